"""``nudgegym features DIR --out users.parquet``: the serving input, one row per user.

Each user's observation as of the end of the log (or ``--as-of``), with ``user_id``: exactly
what ``nudgegym score --input`` expects and what the policy was trained on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from agents.cli._app import app
from predictors.errors import ConfigError
from predictors.io import check_file_writable, write_json, write_parquet


@app.command("features")
def features_cmd(
    data: Path = typer.Argument(..., help="Dataset folder."),
    out: Path = typer.Option(..., "--out", help="users.parquet (or .csv) to write."),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Decision time (ISO 8601): "
                                        "use the periods that ended by then (default: the "
                                        "whole log)."),
) -> None:
    """Each user's observation at the end of the log: the input of `nudgegym score`."""
    from predictors.current import current_observations

    if out.suffix not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out}: expected a .parquet or .csv file name")
    check_file_writable(out)
    table = current_observations(data, as_of=as_of)
    if out.suffix == ".csv":
        from predictors.io import write_text

        write_text(out, table.to_csv(index=False))
    else:
        write_parquet(out, table)
    write_json(out.with_suffix(".json"), {"command": "features", "data": str(data),
                                          "as_of": as_of, "period": table.attrs["period"],
                                          "users": len(table)})
    typer.echo(f"wrote {len(table):,} users x {table.shape[1] - 1} features (state at the "
               f"start of period {table.attrs['period']}) to {out}")
