"""Which datasets a trained predictor belongs with: a schema fingerprint of the training data.

``nudgegym train-predictor`` stores :func:`dataset_fingerprint` of its dataset in the run
folder's ``config.json``; commands that pair a predictor with a dataset call :func:`check_pair`
first, so a predictor used with another shop's data is refused by name (instead of failing deep
inside with a type error). The fingerprint is the dataset's SHAPE, not its content: the action
catalog, the decision period, the type of ``user_id`` and the static user columns. A later log
of the same shop (more events, new users) has the same fingerprint and is accepted.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from predictors.dataset import open_dataset
from predictors.errors import ConfigError

__all__ = ["check_pair", "dataset_fingerprint"]


def dataset_fingerprint(data: str | Path) -> dict[str, Any]:
    """Schema of a dataset folder: actions, period, ``user_id`` type, static user columns."""
    from predictors.loaders import user_id_type
    from predictors.tables import register, spilling_connection

    ds = open_dataset(data)
    with spilling_connection("1GB") as con:
        uid = user_id_type(con, ds)
        static: list[str] = []
        if ds.users_path is not None:
            static = sorted(c for c in register(con, ds.users_path, "users_fp").types
                            if c != "user_id")
    return {"actions": list(ds.spec.action_names), "period": ds.spec.period,
            "user_id": "int" if uid == "BIGINT" else "str", "static_columns": static}


def _trained_fingerprint(predictor: Path) -> dict[str, Any] | None:
    cfg = predictor / "config.json"
    if not cfg.is_file():
        return None
    try:
        return json.loads(cfg.read_text()).get("options", {}).get("dataset_fingerprint")
    except (json.JSONDecodeError, AttributeError):
        return None


def check_pair(predictor: str | Path, data: str | Path, *, predictor_option: str = "--predictor",
               data_option: str = "--data") -> None:
    """Refuse a predictor run folder and a dataset folder that do not belong together.

    Raises:
        FileNotFoundError: Either folder is missing (or the predictor folder holds neither a
            predictor nor an ensemble of predictors).
        ConfigError: The dataset's fingerprint differs from the one the predictor was
            trained on (the message names what differs).
    """
    predictor, data = Path(predictor), Path(data)
    if not predictor.is_dir():
        raise FileNotFoundError(f"{predictor_option} {predictor}: no such folder; expected a "
                                "run folder of `nudgegym train-predictor`")
    if not (predictor / "predictor.json").is_file() \
            and not (predictor / "ensemble.json").is_file():  # a train-predictor --ensemble run
        raise FileNotFoundError(f"{predictor_option} {predictor}: not a predictor run folder "
                                "(no predictor.json); expected the --out of "
                                "`nudgegym train-predictor`")
    if not data.is_dir():
        raise FileNotFoundError(f"{data_option} {data}: no such folder; expected a dataset "
                                "folder")
    trained = _trained_fingerprint(predictor)
    if trained is None:
        return
    now = dataset_fingerprint(data)
    diffs = []
    for key, what in (("user_id", "user_id type"), ("actions", "actions"),
                      ("period", "decision period"), ("static_columns", "user columns")):
        if key in trained and trained[key] != now[key]:
            diffs.append(f"{what} {now[key]!r} (the predictor's data: {trained[key]!r})")
    if diffs:
        raise ConfigError(f"{data_option} {data} does not belong with {predictor_option} "
                          f"{predictor}: it has " + "; ".join(diffs) + ". Use the dataset "
                          "the predictor was trained on (or one of the same shop), or train a "
                          "predictor on this one")
