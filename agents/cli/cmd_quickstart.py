"""``nudgegym quickstart``: the whole loop on the embedded default synthetic shop.

Each stage is one ordinary ``nudgegym`` command run in-process with its own run folder under
``--out``, so a user can re-run or vary any stage by hand with the command printed for it.
"""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import typer

from agents.cli._app import app
from predictors.io import write_json, write_run_config


def _run(args: list[str]) -> None:
    """Run one nudgegym command in-process; raise on failure."""
    typer.echo(f"\n$ nudgegym {shlex.join(args)}", err=True)
    try:
        app(args=args, standalone_mode=False)
    except typer.Exit as e:
        if e.exit_code:
            raise RuntimeError(f"stage failed: nudgegym {shlex.join(args)}") from None
    except Exception as e:
        if hasattr(e, "show") and hasattr(e, "exit_code"):  # a usage error of the parser
            raise RuntimeError(f"stage failed: nudgegym {shlex.join(args)}: {e}") from None
        raise


def quickstart_stages(out: Path, fast: bool, seed: int) -> list[tuple[str, list[str]]]:
    """The quickstart's commands in order (name, argv)."""
    users, periods, epochs = ("1500", "20", "3") if fast else ("10000", "52", "30")
    data, pred = out / "data", out / "predictor"
    return [
        ("generate", ["generate", "--users", users, "--periods", periods, "--logging",
                      "campaign", "--seed", str(seed), "--out", str(data)]),
        ("inspect", ["inspect", str(data), "--out", str(out / "inspect")]),
        ("train-predictor", ["train-predictor", "--data", str(data), "--model", "gru",
                             "--epochs", epochs, "--seed", str(seed), "--out", str(pred),
                             "--no-progress"]),
        ("eval-predictor", ["eval-predictor", "--predictor", str(pred), "--data", str(data),
                            "--out", str(out / "predictor_eval")]),
        ("fidelity", ["fidelity", "--predictor", str(pred), "--data", str(data),
                      "--seed", str(seed), "--out", str(out / "fidelity")]
         + (["--replicates", "1"] if fast else [])),
    ]


@app.command("quickstart")
def quickstart_cmd(
    out: Path = typer.Option(Path("runs/quickstart"), "--out", help="Run folder."),
    fast: bool = typer.Option(False, "--fast", help="A tiny shop and budgets (for tests)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every stage."),
) -> None:
    """Generate the default synthetic shop, train a predictor, check the simulator, report."""
    write_run_config(out, "quickstart", {"out": str(out), "fast": fast}, seed=seed)
    timings: dict[str, float] = {}
    t_all = time.perf_counter()
    stages = quickstart_stages(out, fast, seed)
    for i, (name, args) in enumerate(stages, 1):
        typer.echo(f"[{i}/{len(stages)}] {name}", err=True)
        t0 = time.perf_counter()
        _run(args)
        timings[name] = round(time.perf_counter() - t0, 2)
    timings["total"] = round(time.perf_counter() - t_all, 2)
    summary = {"timings_seconds": timings, "out": str(out)}
    summary_path = out / "inspect" / "summary.json"
    if summary_path.is_file():
        summary["dataset"] = json.loads(summary_path.read_text())
    write_json(out / "quickstart.json", summary)
    typer.echo(f"\nquickstart finished in {timings['total']:.0f} s; results in {out}")
