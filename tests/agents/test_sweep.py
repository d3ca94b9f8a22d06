"""nudgegym sweep: the sweep file's validation, deterministic jobs across executors, resume,
recorded failures, the lower-bound choice and the Optuna search."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from agents.cli import run_main
from agents.sweep import crossed_ci, load_sweep
from predictors import ConfigError

TINY_TRAIN = {"algo": "ppo", "timesteps": 64, "n_envs": 8, "eval_users": 10, "n_steps": 4,
              "batch_size": 32, "n_epochs": 2}
TINY_EVAL = {"users": 20, "horizon": 4, "rules": ["rule:never", "rule:email_capped"]}


def _write(path: Path, sweep: dict) -> Path:
    path.write_text(yaml.safe_dump(sweep))
    return path


def _sweep(run: tuple[Path, Path], **over) -> dict:
    data, pred = run
    s = {"shop": {"data": str(data), "predictor": str(pred)}, "train": dict(TINY_TRAIN),
         "grid": {"learning_rate": [0.001, 0.0003]}, "seeds": [0, 1],
         "evaluation": dict(TINY_EVAL)}
    s.update(over)
    return s


def _metrics(out: Path) -> dict:
    d = json.loads((out / "sweep.json").read_text())
    d.pop("timing")
    return d


@pytest.mark.parametrize("change, match", [
    ({"grdi": {}}, "unknown key `grdi`"),
    ({"grid": {"learnin_rate": [0.1]}}, "`learnin_rate` is neither a train-policy option"),
    ({"grid": {"env": ["sim", "moon"]}}, "`env` must be sim or world"),
    ({"grid": {"learning_rate": 0.1}}, "`grid.learning_rate` must be a list"),
    ({"grid": {"learning_rate": {"low": 1e-4, "high": 1e-2}}}, "grid search needs a list"),
    ({"seeds": [0, 0]}, "seeds has duplicates"),
    ({"seeds": ["a"]}, r"`seeds\[0\]` must be an integer"),
    ({"evaluation": {"users": 10, "horizn": 4}}, "unknown key `evaluation.horizn`"),
    ({"evaluation": {"rules": ["ppo"]}}, "is not a rule"),
    ({"shop": {"predictor": "x"}}, "`shop.data`"),
    ({"search": {"method": "bayes"}}, "search.method must be grid, random or optuna"),
    ({"search": {"method": "random"}}, "search.trials must be >= 1"),
    ({"train": {"timesteps": 0}}, "`timesteps` must be >= 1"),
])
def test_sweep_file_errors_name_the_key(tiny_synthetic_run, tmp_path: Path, change: dict,
                                        match: str) -> None:
    path = _write(tmp_path / "s.yaml", _sweep(tiny_synthetic_run, **change))
    with pytest.raises(ConfigError, match=match):
        load_sweep(path)


def test_sweep_cli_prints_a_one_line_error(tiny_synthetic_run, tmp_path: Path, capsys) -> None:
    path = _write(tmp_path / "s.yaml", _sweep(tiny_synthetic_run, grid={"n_epoch": [1]}))
    assert run_main(["sweep", "--config", str(path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "n_epoch" in err


def test_crossed_ci_reduces_to_the_user_ci_for_one_seed() -> None:
    rng = np.random.default_rng(0)
    m = rng.normal(size=(1, 400))
    ci = crossed_ci(m)
    half = 1.96 * m[0].std(ddof=1) / np.sqrt(400)
    assert ci["low"] == pytest.approx(m.mean() - half) and ci["seed_sd"] is None
    # a seed effect widens the interval
    m3 = rng.normal(size=(3, 400)) + np.array([[0.0], [1.0], [2.0]])
    wide = crossed_ci(m3)
    assert wide["high"] - wide["low"] > 2 * (ci["high"] - ci["low"])
    assert wide["per_seed"] == pytest.approx(list(m3.mean(1)))


def test_same_sweep_json_whatever_the_executor(tiny_synthetic_run, tmp_path: Path) -> None:
    """4 tiny jobs: serial, local --workers 2 and (when installed) a local Ray of 2 CPUs."""
    path = _write(tmp_path / "s.yaml", _sweep(tiny_synthetic_run))
    base = ["sweep", "--config", str(path), "--no-progress"]
    assert run_main([*base, "--out", str(tmp_path / "serial")]) == 0
    serial = _metrics(tmp_path / "serial")
    assert serial["n_jobs"] == 4 and serial["n_done"] == 4
    assert len(serial["configs"]) == 2 and serial["chosen"] in {
        c["config_id"] for c in serial["configs"]}
    chosen = max(serial["configs"], key=lambda c: c["lower_bound"])
    assert chosen["config_id"] == serial["chosen"] and serial["metric"] == "true"
    for c in serial["configs"]:
        assert c["true"]["low"] <= c["true"]["mean"] <= c["true"]["high"]
        assert len(c["true"]["per_seed"]) == 2 and c["true_vs_best_rule"] is not None
    for name in ("sweep.md", "values.png", "learning_curves.png", "jobs.json"):
        assert (tmp_path / "serial" / name).is_file(), name
    assert run_main([*base, "--out", str(tmp_path / "local"), "--executor", "local",
                     "--workers", "2"]) == 0
    assert _metrics(tmp_path / "local") == serial
    folders = sorted(p.name for p in (tmp_path / "serial" / "jobs").iterdir())
    assert folders == sorted(p.name for p in (tmp_path / "local" / "jobs").iterdir())
    pytest.importorskip("ray")
    assert run_main([*base, "--out", str(tmp_path / "ray"), "--executor", "ray",
                     "--workers", "2"]) == 0
    assert _metrics(tmp_path / "ray") == serial


def test_resume_skips_finished_jobs_and_failures_are_recorded(tiny_synthetic_run,
                                                             tmp_path: Path) -> None:
    grid = {"policy_kwargs": [{"net_arch": [8]}, {"activation_fn": "swish"}]}
    path = _write(tmp_path / "s.yaml", _sweep(tiny_synthetic_run, grid=grid, seeds=[0]))
    out = tmp_path / "out"
    assert run_main(["sweep", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    s = _metrics(out)
    assert (s["n_done"], s["n_failed"]) == (1, 1)
    failed = next(j for j in s["jobs"] if j["status"] == "failed")
    assert "swish" in failed["error"]
    assert (out / "jobs" / failed["folder"] / "error.json").is_file()
    done = next(j for j in s["jobs"] if j["status"] == "done")
    result = out / "jobs" / done["folder"] / "result.json"
    stamp = result.stat().st_mtime_ns
    assert run_main(["sweep", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    assert result.stat().st_mtime_ns == stamp  # finished: not run again
    assert _metrics(out) == s
    assert "failed" in (out / "sweep.md").read_text()


def test_random_and_optuna_search(tiny_synthetic_run, tmp_path: Path) -> None:
    grid = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
    path = _write(tmp_path / "s.yaml", _sweep(tiny_synthetic_run, grid=grid, seeds=[0],
                                              search={"method": "random", "trials": 2}))
    cfg = load_sweep(path)
    from agents.sweep.search import random_configs

    a, b = random_configs(cfg, 2, seed=0), random_configs(cfg, 2, seed=0)
    assert a == b and len(a) == 2 and all(1e-4 <= c["learning_rate"] <= 1e-2 for c in a)
    pytest.importorskip("optuna")
    out = tmp_path / "opt"
    assert run_main(["sweep", "--config", str(path), "--out", str(out), "--search", "optuna",
                     "--trials", "2", "--no-progress"]) == 0
    s = _metrics(out)
    assert s["n_jobs"] == 2 and s["n_done"] == 2 and s["chosen"] is not None


def test_a_sweep_over_predictor_families_trains_each_once(tiny_synthetic_run,
                                                          tmp_path: Path) -> None:
    data, _ = tiny_synthetic_run
    s = _sweep(tiny_synthetic_run, grid={"family": ["markov", "logistic"]}, seeds=[0])
    s["shop"] = {"data": str(data), "predictor_epochs": 1}
    path = _write(tmp_path / "s.yaml", s)
    out = tmp_path / "out"
    assert run_main(["sweep", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    summary = _metrics(out)
    assert summary["n_done"] == 2
    trained = sorted(json.loads(p.read_text())["family"]
                     for p in (out / "predictors").glob("*/sweep_predictor.json"))
    assert trained == ["logistic", "markov"]
    jobs = json.loads((out / "jobs.json").read_text())
    assert len({j["predictor"] for j in jobs}) == 2
