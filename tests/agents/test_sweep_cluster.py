"""A two-node Ray cluster on one machine (``ray start --head``, then ``ray start --address``)
runs a sweep through ``--address``; its results equal the serial run's. Expensive: minutes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from agents.cli import run_main

pytestmark = pytest.mark.expensive


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ray_start(args: list[str], log: Path) -> subprocess.Popen:
    """``ray start ... --block`` in its own process group (stopped by killing that group only,
    never with ``ray stop``, which would stop every Ray on the machine)."""
    exe = shutil.which("ray")
    cmd = [exe] if exe else [sys.executable, "-m", "ray.scripts.scripts"]
    ports = ["--dashboard-agent-listen-port", str(_free_port()),
             "--ray-client-server-port", str(_free_port())]
    return subprocess.Popen([*cmd, "start", *args, *ports, "--num-cpus", "1", "--block",
                             "--disable-usage-stats"], stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1", "RAY_AUTH_MODE": "disabled"})


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_two_node_cluster_runs_a_sweep(tiny_synthetic_run, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    ray = pytest.importorskip("ray")
    # A loopback-only test cluster: no token (a token in the home folder would switch it on).
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    data, pred = tiny_synthetic_run
    sweep = {"shop": {"data": str(data), "predictor": str(pred)},
             "train": {"algo": "ppo", "timesteps": 64, "n_envs": 8, "eval_users": 10,
                       "n_steps": 4, "batch_size": 32, "n_epochs": 2},
             "grid": {"learning_rate": [0.001, 0.0003]}, "seeds": [0, 1],
             "evaluation": {"users": 20, "horizon": 4, "rules": ["rule:never"]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(sweep))
    port = _free_port()
    address = f"127.0.0.1:{port}"
    head = _ray_start(["--head", "--port", str(port), "--node-ip-address", "127.0.0.1",
                       "--include-dashboard", "false"], tmp_path / "head.log")
    node = None
    try:
        time.sleep(10)
        node = _ray_start(["--address", address, "--node-ip-address", "127.0.0.1"],
                          tmp_path / "node.log")
        ray.init(address=address, logging_level="error", log_to_driver=False)
        deadline = time.time() + 120
        while sum(n["Alive"] for n in ray.nodes()) < 2 and time.time() < deadline:
            time.sleep(2)
        assert sum(n["Alive"] for n in ray.nodes()) == 2, (tmp_path / "node.log").read_text()
        ray.shutdown()
        assert run_main(["sweep", "--config", str(path), "--out", str(tmp_path / "ray"),
                         "--executor", "ray", "--address", address, "--no-progress"]) == 0
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for p in (node, head):
            if p is not None:
                _stop(p)
    assert run_main(["sweep", "--config", str(path), "--out", str(tmp_path / "serial"),
                     "--no-progress"]) == 0
    a, b = (json.loads((tmp_path / n / "sweep.json").read_text()) for n in ("ray", "serial"))
    assert a.pop("timing")["executor"] == "ray"
    b.pop("timing")
    assert a == b and a["n_done"] == 4
