"""A synthetic shop's logs as a real shop would export them: an orders CSV and a send-log CSV.

:func:`export_crm` writes, from a generated dataset folder:

* ``orders.csv``: ``order_id, customer_id, ordered_at, total`` (one row per purchase; ISO 8601
  UTC times);
* ``sends.csv``: ``send_id, customer_id, sent_at, campaign, channel, cost, propensity`` (one row
  per message actually sent, i.e. every logged intervention except ``none``; ``propensity`` is
  the logging policy's exact probability of that send, which a real CRM rarely has);
* ``catalog.yaml``: the catalog file mapping the campaign names to the actions
  (:mod:`predictors.importers.catalog`).

Visits, views, carts and unsubscribes are not exported: an order history and a send log is
what most shops have. The synthetic dataset keeps ``truth/``, so whatever is learnt from the
CSV pair can be checked against the world that generated it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from predictors.contract import read_spec
from predictors.io import atomic_path

#: Campaign names per catalog action; e-mail alternates between two newsletters by week.
CAMPAIGNS = {"email": ("weekly_newsletter", "product_digest"), "push": ("app_push",),
             "coupon_10": ("winback_10pct",), "coupon_20": ("vip_20pct",)}
#: Hours after the period start at which a send goes out (Monday 09:00 UTC on a weekly shop).
SEND_HOUR = 9


def _campaign_names(action: str) -> tuple[str, ...]:
    return CAMPAIGNS.get(action, (action,))


def export_crm(data: str | Path, out: str | Path) -> dict[str, Path]:
    """Write ``orders.csv``, ``sends.csv`` and ``catalog.yaml`` of a generated dataset.

    Args:
        data: A dataset folder written by :func:`predictors.generate`.
        out: Folder to write (created; existing files of these names are replaced).

    Returns:
        The three paths by name (``orders``, ``sends``, ``catalog``).

    Example:
        >>> paths = export_crm("data/shop", "data/shop_crm")  # doctest: +SKIP
        >>> sorted(paths)  # doctest: +SKIP
        ['catalog', 'orders', 'sends']
    """
    data, out = Path(data), Path(out)
    spec = read_spec(data)
    events = pd.read_parquet(data / "events.parquet",
                             columns=["user_id", "timestamp", "event_type", "revenue"])
    iv = pd.read_parquet(data / "interventions.parquet")
    orders = events[events["event_type"].astype(str) == "purchase"].sort_values(
        ["timestamp", "user_id"], kind="stable")
    orders = pd.DataFrame({
        "order_id": [f"o{i:07d}" for i in range(1, len(orders) + 1)],
        "customer_id": [f"c{u:06d}" for u in orders["user_id"]],
        "ordered_at": orders["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
        "total": orders["revenue"].round(2).to_numpy()})
    by_name = {a.name: a for a in spec.actions}
    sends = iv[iv["action"].astype(str) != "none"].copy()
    sends["action"] = sends["action"].astype(str)
    origin = pd.Timestamp(spec.origin)
    week = ((sends["timestamp"] - origin) // pd.Timedelta(seconds=spec.period_seconds))
    names = [_campaign_names(a) for a in sends["action"]]
    sends = sends.assign(campaign=[n[int(w) % len(n)] for n, w in zip(names, week, strict=True)])
    sends = sends.sort_values(["timestamp", "user_id"], kind="stable")
    sent_at = sends["timestamp"] + pd.Timedelta(hours=SEND_HOUR)
    sends_csv = pd.DataFrame({
        "send_id": [f"s{i:07d}" for i in range(1, len(sends) + 1)],
        "customer_id": [f"c{u:06d}" for u in sends["user_id"]],
        "sent_at": sent_at.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
        "campaign": sends["campaign"].to_numpy(),
        "channel": [by_name[a].channel or "" for a in sends["action"]],
        "cost": [by_name[a].cost for a in sends["action"]],
        "propensity": np.round(sends["propensity"].to_numpy(), 6)})
    out.mkdir(parents=True, exist_ok=True)
    paths = {"orders": out / "orders.csv", "sends": out / "sends.csv",
             "catalog": out / "catalog.yaml"}
    for key, frame in (("orders", orders), ("sends", sends_csv)):
        with atomic_path(paths[key]) as tmp:
            frame.to_csv(tmp, index=False)
    with atomic_path(paths["catalog"]) as tmp:
        Path(tmp).write_text(catalog_yaml(spec.actions), encoding="utf-8")
    return paths


def catalog_yaml(actions) -> str:
    """The catalog file text of ``actions`` with the campaign names of :data:`CAMPAIGNS`."""
    lines = ["# Catalog of actions: which campaigns of sends.csv are which action.",
             "actions:"]
    for a in actions:
        lines.append(f"  - name: {a.name}")
        lines.append(f"    kind: {a.kind}")
        if a.kind != "none":
            lines.append(f"    channel: {a.channel}")
            lines.append(f"    cost: {a.cost}")
            if a.kind == "discount":
                lines.append(f"    discount_rate: {a.discount_rate}")
            lines.append(f"    campaigns: [{', '.join(_campaign_names(a.name))}]")
    return "\n".join(lines) + "\n"
