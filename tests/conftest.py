"""Tiny datasets and predictors shared by the env and agent tests."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

# One OpenMP thread per test process unless the caller says otherwise: the suite runs one
# worker per core (``-n 2`` on 2 cores), and two-thread torch / MKL / scikit-learn regions in
# each worker, plus the notebook kernels and executor processes they start, oversubscribed
# the cores (the slowest tests took 3-10x longer). Set before numpy and torch load; tests of
# several threads set them explicitly (``torch.set_num_threads``, ``num_threads=``).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from predictors import DatasetSpec, build_panel, default_catalog, write_dataset

_TMP: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Give the run its own temporary folder, removed at the end.

    The notebooks write their work into ``tempfile.mkdtemp()`` (a user keeps it), and SB3's
    default logger makes a folder there too; under the tests these would pile up in the
    machine's temporary folder. Kernels started by nbmake inherit ``TMPDIR``. Ray keeps the
    machine's folder (``RAY_TMPDIR``): its socket paths have a length limit.
    """
    _TMP["old"] = tempfile.gettempdir()
    _TMP["run"] = tempfile.mkdtemp(prefix="nudgegym-tests-")
    os.environ.setdefault("RAY_TMPDIR", _TMP["old"])
    os.environ["TMPDIR"] = _TMP["run"]
    tempfile.tempdir = None


def pytest_unconfigure(config: pytest.Config) -> None:
    if "run" in _TMP:
        os.environ["TMPDIR"] = _TMP["old"]
        tempfile.tempdir = None
        shutil.rmtree(_TMP.pop("run"), ignore_errors=True)


@pytest.fixture
def one_torch_thread():
    """Run the test with one torch thread and restore the caller's count afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def make_tiny_dataset(folder: Path, n_users: int = 80, n_periods: int = 10,
                      seed: int = 0) -> Path:
    """Random users who visit/buy more when e-mailed, logged with uniform propensities."""
    rng = np.random.default_rng(seed)
    spec = DatasetSpec(actions=default_catalog(), period="7D", currency="USD",
                       origin="2025-01-06T00:00:00+00:00", source="test", licence="test")
    origin = pd.Timestamp("2025-01-06", tz="UTC")
    ev, iv = [], []
    n_a = len(spec.actions)
    for p in range(n_periods):
        a = rng.integers(n_a, size=n_users)
        t = origin + pd.Timedelta(days=7 * p)
        iv.append(pd.DataFrame({"user_id": np.arange(n_users), "timestamp": t,
                                "action": np.array(spec.action_names)[a],
                                "propensity": 1.0 / n_a}))
        visit = rng.random(n_users) < 0.3 + 0.2 * (a > 0)
        buy = visit & (rng.random(n_users) < 0.4)
        for mask, kind in ((visit, "visit"), (visit, "view"), (buy, "purchase")):
            u = np.flatnonzero(mask)
            ev.append(pd.DataFrame({
                "user_id": u, "timestamp": t + pd.Timedelta(hours=12), "event_type": kind,
                "revenue": np.where(kind == "purchase", rng.lognormal(3, 0.5, len(u)), np.nan)}))
    events = pd.concat(ev, ignore_index=True)
    events["timestamp"] = events["timestamp"] + pd.to_timedelta(np.arange(len(events)) % 3600,
                                                                unit="s")
    users = pd.DataFrame({"user_id": np.arange(n_users),
                          "region": rng.choice(["north", "south"], n_users)})
    write_dataset(folder, spec, events, pd.concat(iv, ignore_index=True), users)
    return folder


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(dataset folder, predictor run folder) with a 1-epoch GRU."""
    from predictors.models import BehaviorPredictor, PredictorConfig

    root = tmp_path_factory.mktemp("shop")
    data = make_tiny_dataset(root / "data")
    from predictors import load_users, open_dataset

    ds = open_dataset(data)
    panel = build_panel(ds)
    pred = BehaviorPredictor(PredictorConfig(family="gru", epochs=1, hidden=8, history=4,
                                             device="cpu", seed=0))
    pred.fit(panel, ds.spec.action_names, users=load_users(ds), progress=False)
    pred.save(root / "pred")
    return data, root / "pred"


@pytest.fixture(scope="session")
def tiny_synthetic_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(generated synthetic dataset folder with truth/, predictor run folder), 1-epoch GRU."""
    from predictors import GenerateConfig, generate, load_users, open_dataset
    from predictors.models import BehaviorPredictor, PredictorConfig

    root = tmp_path_factory.mktemp("synthetic")
    data = generate(GenerateConfig(n_users=300, n_periods=8, seed=0), root / "data")
    ds = open_dataset(data)
    pred = BehaviorPredictor(PredictorConfig(family="gru", epochs=1, hidden=8, history=4,
                                             device="cpu", seed=0))
    pred.fit(build_panel(ds), ds.spec.action_names, users=load_users(ds), progress=False)
    pred.save(root / "pred")
    return data, root / "pred"
