"""Bad inputs of the command line, each with the error it must give (shared by the tests).

``python tests/agents/bad_inputs.py ROOT`` builds the tiny fixtures under ``ROOT``, runs every
case through :func:`agents.cli.run_main` and prints a Markdown table: case, command, exit code,
the error line, and what is left in ``--out``.
"""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class Case:
    """One bad input: ``argv`` (``{R}`` = the fixture root), the expected error text, the
    ``--out`` that must be absent (or empty) afterwards, or ``kept`` that must be unchanged."""

    name: str
    argv: str
    expect: str
    out: str | None = None
    kept: str | None = None


CASES = [
    # -- the list first
    Case("predictor paired with another dataset (train-policy)",
         "train-policy --predictor {R}/pred --data {R}/sdata --timesteps 64 --out {R}/o",
         "does not belong with --predictor", out="o"),
    Case("predictor paired with another dataset (evaluate)",
         "evaluate --predictor {R}/pred --data {R}/sdata --policy rule:never --out {R}/o",
         "does not belong with --predictor", out="o"),
    Case("predictor paired with another dataset (fidelity)",
         "fidelity --predictor {R}/pred --data {R}/sdata --out {R}/o",
         "user_id type 'str'", out="o"),
    Case("predictor paired with another dataset (predict)",
         "predict --predictor {R}/pred --data {R}/sdata --out {R}/o",
         "does not belong with --predictor", out="o"),
    Case("orders CSV not UTF-8", "import transactions {R}/latin1.csv --user-col customer "
         "--time-col ordered_at --out {R}/o", "is not UTF-8", out="o"),
    Case("orders CSV empty", "import transactions {R}/empty.csv --user-col customer "
         "--time-col ordered_at --out {R}/o", "the file is empty", out="o"),
    Case("hyperparameter of the wrong type (learning_rate: fast)",
         "train-policy --predictor {R}/pred --data {R}/data --config {R}/hp_fast.yaml "
         "--timesteps 64 --out {R}/o", "`learning_rate` must be a number", out="o"),
    Case("--out is an existing file (export)",
         "export --policy {R}/ppo --out {R}/afile.txt", "is a file; expected a folder"),
    Case("--out under a file (train-predictor, before fitting)",
         "train-predictor --data {R}/data --model logistic --epochs 1 --out {R}/afile.txt/run",
         "is a file; expected a folder path"),
    Case("generate onto an existing dataset without --overwrite",
         "generate --users 20 --periods 2 --out {R}/data", "pass --overwrite", kept="data"),
    Case("import onto an existing dataset without --overwrite",
         "import transactions {R}/orders.csv --user-col customer --time-col ordered_at "
         "--out {R}/sdata", "pass --overwrite", kept="sdata"),
    Case("--out is a folder of other files", "inspect {R}/data --out {R}/userfiles",
         "a folder holding other files", kept="userfiles"),
    Case("validate: dataset folder missing", "validate {R}/nope", "expected a dataset folder"),
    # -- datasets
    Case("dataset folder missing", "train-predictor --data {R}/nope --model logistic "
         "--out {R}/o", "nope", out="o"),
    Case("dataset.json not JSON", "train-predictor --data {R}/badjson --model logistic "
         "--out {R}/o", "dataset.json", out="o"),
    Case("events.parquet not Parquet", "inspect {R}/badparquet --out {R}/o", "events.parquet",
         out="o"),
    Case("events.csv not UTF-8", "inspect {R}/latin1ds --out {R}/o", "events.csv", out="o"),
    Case("inspect: folder missing", "inspect {R}/nope", "nope"),
    # -- options
    Case("unknown predictor family", "train-predictor --data {R}/data --model forest "
         "--out {R}/o", "--model", out="o"),
    Case("epochs 0", "train-predictor --data {R}/data --model logistic --epochs 0 --out {R}/o",
         "--epochs", out="o"),
    Case("device not present", "train-predictor --data {R}/data --model logistic "
         "--device cuda:7 --out {R}/o", "--device", out="o"),
    Case("generate --users 0", "generate --users 0 --out {R}/o", "--users", out="o"),
    Case("option value of the wrong type", "generate --users many --out {R}/o",
         "'--users'", out="o"),
    Case("unknown option", "generate --user 5 --out {R}/o", "--user", out="o"),
    Case("generate --logging unknown", "generate --logging often --out {R}/o", "--logging",
         out="o"),
    Case("unknown algorithm", "train-policy --predictor {R}/pred --data {R}/data --algo sac "
         "--out {R}/o", "--algo", out="o"),
    Case("timesteps 0", "train-policy --predictor {R}/pred --data {R}/data --timesteps 0 "
         "--out {R}/o", "--timesteps", out="o"),
    Case("--predictor is not a predictor", "train-policy --predictor {R}/data --data {R}/data "
         "--out {R}/o", "not a predictor run folder", out="o"),
    Case("--predictor missing", "evaluate --predictor {R}/nope --data {R}/data "
         "--policy rule:never --out {R}/o", "--predictor", out="o"),
    Case("--resume without a checkpoint", "train-policy --predictor {R}/pred --data {R}/data "
         "--resume --out {R}/o", "nothing to resume from", out="o"),
    Case("hyperparameter YAML: unknown key", "train-policy --predictor {R}/pred --data {R}/data "
         "--config {R}/hp_unknown.yaml --out {R}/o", "not arguments of ppo", out="o"),
    Case("hyperparameter YAML: syntax error", "train-policy --predictor {R}/pred "
         "--data {R}/data --config {R}/hp_broken.yaml --out {R}/o", "hp_broken.yaml", out="o"),
    Case("hyperparameter YAML: not a mapping", "train-policy --predictor {R}/pred "
         "--data {R}/data --config {R}/hp_list.yaml --out {R}/o", "expected a mapping",
         out="o"),
    Case("hyperparameter YAML missing", "train-policy --predictor {R}/pred --data {R}/data "
         "--config {R}/nope.yaml --out {R}/o", "nope.yaml", out="o"),
    Case("unknown rule", "evaluate --predictor {R}/pred --data {R}/data --policy rule:psychic "
         "--out {R}/o", "psychic", out="o"),
    Case("policy folder missing", "evaluate --predictor {R}/pred --data {R}/data "
         "--policy {R}/nope --out {R}/o", "nope", out="o"),
    Case("unknown start users", "evaluate --predictor {R}/pred --data {R}/data "
         "--policy rule:never --start-users vip --out {R}/o", "vip", out="o"),
    Case("OPE on logs without propensities", "ope {R}/sdata --policy rule:never --out {R}/o",
         "propensit", out="o"),
    Case("OPE: unknown reward", "ope {R}/data --policy rule:never --reward joy --out {R}/o",
         "joy", out="o"),
    Case("export: policy folder missing", "export --policy {R}/nope --out {R}/o", "--policy",
         out="o"),
    Case("export: not a policy run", "export --policy {R}/pred --out {R}/o", "pred", out="o"),
    Case("export: unknown format", "export --policy {R}/ppo --format pmml --out {R}/o",
         "--format", out="o"),
    Case("score: --model not an export", "score --model {R}/ppo --input {R}/users.parquet "
         "--out {R}/o/d.parquet", "not an export folder", out="o"),
    Case("score: --input missing", "score --model {R}/export --input {R}/nope.parquet "
         "--out {R}/o/d.parquet", "nope.parquet", out="o"),
    Case("score: --input lacks the features", "score --model {R}/export "
         "--input {R}/orders.csv --out {R}/o/d.parquet", "missing", out="o"),
    Case("score: --input has a non-number", "score --model {R}/export "
         "--input {R}/users_text.csv --out {R}/o/d.parquet", "a finite number", out="o"),
    Case("score: --input empty", "score --model {R}/export --input {R}/empty.csv "
         "--out {R}/o/d.parquet", "the file is empty", out="o"),
    Case("score: both --input and --data", "score --model {R}/export --input "
         "{R}/users.parquet --data {R}/data --out {R}/o/d.parquet", "exactly one", out="o"),
    Case("features: --as-of not a time", "features {R}/data --as-of someday "
         "--out {R}/o/u.parquet", "--as-of", out="o"),
    Case("features: --as-of before the log", "features {R}/data --as-of 2001-01-01 "
         "--out {R}/o/u.parquet", "before the end of the first period", out="o"),
    Case("features: --out not a table file", "features {R}/data --out {R}/o/u.txt",
         ".parquet or .csv", out="o"),
    Case("import: required column option missing", "import transactions {R}/orders.csv "
         "--time-col ordered_at --out {R}/o", "--user-col", out="o"),
    Case("import: column not in the file", "import transactions {R}/orders.csv "
         "--user-col client --time-col ordered_at --out {R}/o", "client", out="o"),
    Case("import: wrong kind for the file", "import hillstrom {R}/orders.csv --out {R}/o",
         "orders.csv", out="o"),
    Case("forecast: --periods 0", "forecast --predictor {R}/pred --data {R}/data --periods 0 "
         "--out {R}/o", "--periods", out="o"),
    Case("forecast: one replicate", "forecast --predictor {R}/pred --data {R}/data --periods 2 "
         "--replicates 1 --out {R}/o", "--replicates", out="o"),
    Case("forecast: unknown rule", "forecast --predictor {R}/pred --data {R}/data --periods 2 "
         "--policy rule:psychic --out {R}/o", "psychic", out="o"),
    Case("forecast: unknown start users", "forecast --predictor {R}/pred --data {R}/data "
         "--periods 2 --start-users vip --out {R}/o", "vip", out="o"),
    Case("forecast: predictor paired with another dataset", "forecast --predictor {R}/pred "
         "--data {R}/sdata --periods 2 --out {R}/o", "--predictor", out="o"),
    Case("forecast: unknown estimator", "forecast --predictor {R}/pred --data {R}/data "
         "--periods 2 --estimator counted --out {R}/o", "counted", out="o"),
    Case("forecast: unknown ensemble mode", "forecast --predictor {R}/pred --data {R}/data "
         "--periods 2 --ensemble vote --out {R}/o", "--ensemble", out="o"),
    Case("bench forecast: no members", "bench forecast --data {R}/data --families logistic "
         "--members 0 --out {R}/o", "members", out="o"),
    Case("bench forecast: unknown estimator", "bench forecast --data {R}/data --families none "
         "--estimator counted --out {R}/o", "counted", out="o"),
    Case("bench forecast: split longer than the log", "bench forecast --data {R}/data "
         "--calibration-periods 4 --holdout-periods 4 --families none --out {R}/o",
         "exceeds the 6 periods", out="o"),
    Case("bench forecast: not a dataset", "bench forecast --data {R}/userfiles --out {R}/o",
         "expected a dataset folder", out="o"),
    Case("bench forecast: unknown baseline", "bench forecast --data {R}/data --baselines bgnb "
         "--out {R}/o", "bgnb", out="o"),
    Case("bench forecast: unknown family", "bench forecast --data {R}/data --families gpt "
         "--out {R}/o", "gpt", out="o"),
    Case("calibrate-predictor: unknown method", "calibrate-predictor --predictor {R}/pred "
         "--data {R}/data --method platt --out {R}/o", "platt", out="o"),
    Case("calibrate-predictor: rollout degree out of range", "calibrate-predictor --predictor "
         "{R}/pred --data {R}/data --method rollout --degree 7 --out {R}/o", "--degree", out="o"),
    Case("calibrate-predictor: rollout with another dataset", "calibrate-predictor "
         "--predictor {R}/pred --data {R}/sdata --method rollout --out {R}/o", "--predictor",
         out="o"),
    Case("calibrate-predictor: action max weight below 1", "calibrate-predictor --predictor "
         "{R}/pred --data {R}/data --method action --max-weight 0.5 --out {R}/o", "--max-weight",
         out="o"),
    Case("fidelity: bad action horizons", "fidelity --predictor {R}/pred --data {R}/data "
         "--action-horizons 0,4 --out {R}/o", "--action-horizons", out="o"),
    Case("import: source missing", "import transactions {R}/nope.csv --user-col customer "
         "--time-col ordered_at --out {R}/o", "nope.csv", out="o"),
]


def build_fixtures(root: Path) -> Path:
    """Tiny datasets, a predictor, a policy and an export, and the bad files, under ``root``."""
    from agents.cli import run_main

    root.mkdir(parents=True, exist_ok=True)
    steps = [
        f"generate --users 200 --periods 6 --seed 0 --out {root}/data",
        f"train-predictor --data {root}/data --model logistic --epochs 1 --out {root}/pred "
        "--no-progress",
        f"train-policy --predictor {root}/pred --data {root}/data --timesteps 64 --n-envs 32 "
        f"--eval-users 20 --out {root}/ppo --no-progress",
        f"export --policy {root}/ppo --out {root}/export",
        f"features {root}/data --out {root}/users.parquet",
    ]
    pd.DataFrame({"customer": ["a", "b", "a", "c"],
                  "ordered_at": ["2024-01-01", "2024-01-03", "2024-01-10", "2024-01-20"],
                  "total": [10, 20, 30, 5]}).to_csv(root / "orders.csv", index=False)
    steps.append(f"import transactions {root}/orders.csv --user-col customer "
                 f"--time-col ordered_at --amount-col total --out {root}/sdata")
    with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()), \
            contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        for s in steps:
            if run_main(s.split()) != 0:
                raise RuntimeError(f"fixture step failed: nudgegym {s}")
    (root / "empty.csv").write_text("")
    (root / "latin1.csv").write_bytes("customer,ordered_at,total\nM\xfcller,2024-01-01,10\n"
                                      .encode("latin-1"))
    (root / "hp_fast.yaml").write_text("learning_rate: fast\n")
    (root / "hp_unknown.yaml").write_text("learning_rat: 0.001\n")
    (root / "hp_broken.yaml").write_text("learning_rate: [0.1\n")
    (root / "hp_list.yaml").write_text("- 0.1\n")
    (root / "afile.txt").write_text("not a folder\n")
    (root / "userfiles").mkdir(exist_ok=True)
    (root / "userfiles" / "notes.txt").write_text("my notes\n")
    users = pd.read_parquet(root / "users.parquet")
    users["recency"] = users["recency"].astype(object)
    users.loc[3, "recency"] = "high"
    users.to_csv(root / "users_text.csv", index=False)
    for name in ("badjson", "badparquet", "latin1ds"):
        (root / name).mkdir(exist_ok=True)
        (root / name / "dataset.json").write_text((root / "data" / "dataset.json").read_text())
    (root / "badjson" / "dataset.json").write_text('{"schema_version": 1, "period": ')
    (root / "badjson" / "events.parquet").write_bytes(
        (root / "data" / "events.parquet").read_bytes())
    (root / "badparquet" / "events.parquet").write_bytes(b"PAR1 this is not parquet")
    (root / "latin1ds" / "events.csv").write_bytes(
        "user_id,timestamp,event_type\n1,2025-01-06T10:00:00Z,vis\xeft\n".encode("latin-1"))
    return root


def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() \
        else []


def run_case(case: Case, root: Path) -> dict[str, object]:
    """Run one case; return its exit code, stderr, stdout and the state of its ``--out``."""
    import shutil

    from agents.cli import run_main

    before = _listing(root / case.kept) if case.kept else None
    if case.out is not None and (root / case.out).exists():
        shutil.rmtree(root / case.out)
    err, out = io.StringIO(), io.StringIO()
    argv = case.argv.format(R=root).split()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = run_main(argv)
    left = "-"
    if case.out is not None:
        o = root / case.out
        left = "absent" if not o.exists() else ("empty" if not any(o.iterdir()) else
                                                 "NOT EMPTY: " + ", ".join(_listing(o)[:3]))
    elif case.kept is not None:
        left = "unchanged" if _listing(root / case.kept) == before else "CHANGED"
    stray = [p.name for p in root.iterdir() if ".partial-" in p.name or ".old-" in p.name]
    if stray:
        left += f"; leftovers {stray}"
    return {"rc": rc, "err": err.getvalue(), "out": out.getvalue(), "left": left,
            "argv": " ".join(argv).replace(str(root) + "/", "")}


def error_line(err: str) -> str:
    """The ``error: ...`` line of a command's stderr ('' when there is none)."""
    lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    return lines[-1] if lines else ""


def main(root: str) -> None:
    """Print the Markdown table of every case."""
    r = build_fixtures(Path(root))
    print("| # | bad input | command | exit | error line | --out afterwards |")
    print("|---|---|---|---|---|---|")
    for i, case in enumerate(CASES, 1):
        res = run_case(case, r)
        line = error_line(str(res["err"])).replace("|", "\\|").replace(str(r) + "/", "")
        print(f"| {i} | {case.name} | `nudgegym {res['argv']}` | {res['rc']} | `{line}` | "
              f"{res['left']} |")


if __name__ == "__main__":
    main(sys.argv[1])
