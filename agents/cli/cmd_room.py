"""``nudgegym room``: how much better than the best rule a policy can do on a synthetic shop."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import typer

from agents.cli._app import app, output_folder
from predictors.io import write_json, write_run_config


@app.command("room")
def room_cmd(
    data: Path = typer.Option(..., "--data", help="A generated dataset folder (with truth/)."),
    out: Path = typer.Option(..., "--out", help="Folder for room.json, room.png, config.json."),
    users: int = typer.Option(20_000, "--users", help="Evaluation start users."),
    fit_users: int = typer.Option(20_000, "--fit-users",
                                  help="Fresh users the searches and models are fitted on."),
    val_users: int = typer.Option(10_000, "--val-users",
                                  help="Fresh users that choose the observable ceiling."),
    horizon: int = typer.Option(26, "--horizon", help="Periods per rollout."),
    static: bool = typer.Option(True, "--static/--no-static",
                                help="Observable policies read the users table's columns."),
    history: str = typer.Option("full", "--history",
                                help="full, or base (without per-channel response features)."),
    tune_budget: int = typer.Option(15_000_000, "--tune-budget",
                                    help="User-periods of the tuned-rule search."),
    ablate: bool = typer.Option(False, "--ablate",
                                help="Also measure the ceiling without static columns, without "
                                     "per-channel history features, and without both."),
    gaps: str = typer.Option("1,2,3,4,6,8", "--gaps",
                             help="Comma-separated gaps of the capped-rule family."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
) -> None:
    """TRUE values (paired 95% CIs) of every rule, the tuned rule, oracles and the ceiling."""
    from agents.room import RoomConfig, measure_room, plot_room

    try:
        gap_list = tuple(int(g) for g in gaps.split(",") if g.strip())
    except ValueError:
        raise ValueError(f"--gaps: expected comma-separated integers; got {gaps!r}") from None
    cfg = RoomConfig(gaps=gap_list, n_users=users, n_fit=fit_users, n_val=val_users,
                     horizon=horizon,
                     static=static, history=history, tune_budget=tune_budget, seed=seed,
                     variants=((False, "full"), (True, "base"), (False, "base")) if ablate
                     else ())
    with output_folder(out) as tmp:
        result = measure_room(data, cfg, progress=True)
        write_run_config(tmp, "room", {"data": str(data), "users": users, "fit_users": fit_users,
                                       "val_users": val_users, "horizon": horizon,
                                       "static": static, "history": history,
                                       "tune_budget": tune_budget, "ablate": ablate,
                                       "gaps": list(gap_list)}, seed=seed)
        write_json(tmp / "room.json", result)
        plot_room(result, tmp / "room.png")
    def pct(r: dict) -> str:
        return f"{r['mean']:+.1f} [{r['low']:+.1f}, {r['high']:+.1f}]"

    rows = [{"policy": p["name"] + (" *" if p["ceiling"] else ""),
             "value": round(p["value"]["mean"], 2), "vs best rule %": pct(p["vs_best_rule_pct"])}
            for p in result["policies"]]
    typer.echo(pd.DataFrame(rows).to_string(index=False))
    typer.echo(f"tuned rule: {result['tuned_rule']}; best tuned rule (reference): "
               f"{result['best_rule']}")
    for v in result["ceiling_variants"]:
        r = v["room"]
        typer.echo(f"ceiling with static={v['static']}, history={v['history']}: "
                   f"{r['mean']:+.1f}% [{r['low']:+.1f}, {r['high']:+.1f}] vs the best rule")
    r = result["room"]
    typer.echo(f"room (observable ceiling * - best tuned rule): {r['mean']:+.1f}% "
               f"[{r['low']:+.1f}, {r['high']:+.1f}]; wrote {out / 'room.json'}")
