"""``bench env --ensemble K`` times the single model next to the ensemble."""

from __future__ import annotations

import json

import pytest

from agents.cli._app import run_main
from predictors.synthetic.generate import GenerateConfig, generate


@pytest.mark.expensive  # a generated shop, two fits and four timing windows
def test_bench_env_ensemble_reports_the_single_model_and_the_ratio(tmp_path) -> None:
    data = generate(GenerateConfig(n_users=300, n_periods=8, seed=0), tmp_path / "shop")
    rc = run_main(["bench", "env", "--data", str(data), "--families", "mlp", "--n-envs", "64",
                   "--no-naive", "--min-seconds", "0.05", "--ensemble", "2",
                   "--out", str(tmp_path / "b")])
    assert rc == 0
    rows = json.loads((tmp_path / "b" / "bench.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["ensemble"] == 2
    r = rows[0]
    assert r["single_batched"] > 0 and r["batched"] > 0
    assert r["ensemble_ratio"] == r["batched"] / r["single_batched"]
