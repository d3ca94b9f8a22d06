"""Files the project writes: umask modes, staged and resumable output folders, stale temporary
files, one warning line per message; training resume (notice, checkpoint order, appended log)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from agents.cli import run_main
from predictors.errors import ConfigError
from predictors.io import (
    atomic_path,
    resumable_folder,
    staged_folder,
    write_json,
    write_parquet,
    write_text,
)


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_outputs_get_the_umask(tmp_path: Path, umask, mask: int) -> None:
    umask(mask)
    files = [write_json(tmp_path / "a.json", {"x": 1}), write_text(tmp_path / "r.md", "hi"),
             write_parquet(tmp_path / "t.parquet", pd.DataFrame({"x": [1]}))]
    with atomic_path(tmp_path / "model.zip") as tmp:
        tmp.write_bytes(b"zip")
    files.append(tmp_path / "model.zip")
    for f in files:
        assert _mode(f) == 0o666 & ~mask, f
    with staged_folder(tmp_path / "run") as tmp:
        (tmp / "x").write_text("1")
    assert _mode(tmp_path / "run") == 0o777 & ~mask


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    dead = tmp_path / ".checkpoint.zip.999999999.abcd.tmp"  # no such pid
    dead.write_bytes(b"half a zip")
    alive = tmp_path / f".checkpoint.zip.{os.getpid()}.efgh.tmp"  # a write in progress
    alive.write_bytes(b"")
    stale_dir = tmp_path / ".run.partial-999999999-xyz"
    stale_dir.mkdir()
    with atomic_path(tmp_path / "checkpoint.zip") as tmp:
        tmp.write_bytes(b"zip")
    assert not dead.exists() and alive.exists()
    with staged_folder(tmp_path / "run") as tmp:
        (tmp / "config.json").write_text("{}")
    assert not stale_dir.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [alive.name, "checkpoint.zip", "run"])


def test_staged_folder_leaves_nothing_on_failure_and_replaces_a_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(RuntimeError), staged_folder(out) as tmp:
        (tmp / "config.json").write_text("{}")
        raise RuntimeError("stage broke")
    assert list(tmp_path.iterdir()) == []
    out.mkdir()
    (out / "config.json").write_text('{"old": 1}')
    (out / "stale.json").write_text("{}")
    with staged_folder(out) as tmp:
        (tmp / "config.json").write_text('{"new": 1}')
    assert sorted(p.name for p in out.iterdir()) == ["config.json"]
    assert json.loads((out / "config.json").read_text()) == {"new": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="holding other files"), staged_folder(mine):
        pass
    with pytest.raises(ConfigError, match="pass --overwrite"), staged_folder(out, replace=False):
        pass
    assert (mine / "notes.txt").read_text() == "keep me"


def test_resumable_folder_restores_the_previous_run_on_failure(tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text("old")
    with pytest.raises(ValueError), resumable_folder(out) as run:
        assert not (run / "config.json").exists()  # a fresh run starts empty
        (run / "checkpoint.zip").write_text("partial")
        raise ValueError("bad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (out / "config.json").read_text() == "old"
    with pytest.raises(KeyboardInterrupt), resumable_folder(tmp_path / "new") as run:
        (run / "checkpoint.zip").write_text("resumable")
        raise KeyboardInterrupt
    assert (tmp_path / "new" / "checkpoint.zip").is_file()  # kept for --resume


def test_a_warning_is_printed_once_without_a_source_line(tmp_path: Path, capsys) -> None:
    from conftest import make_tiny_dataset

    data = make_tiny_dataset(tmp_path / "d", n_users=20, n_periods=3)
    ev = pd.read_parquet(data / "events.parquet")
    pd.concat([ev, ev.iloc[:1]]).to_parquet(data / "events.parquet")  # one exact duplicate
    assert run_main(["inspect", str(data), "--out", str(tmp_path / "i")]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "duplicate" in ln]
    assert len(lines) == 1 and lines[0].startswith("warning: "), err
    assert "UserWarning" not in err and ".py:" not in err


def test_resume_says_where_it_continues_and_appends_the_log(tiny_run, tmp_path: Path, capsys,
                                                            one_torch_thread) -> None:
    data, pred = tiny_run
    out = tmp_path / "run"
    cfg = tmp_path / "hp.yaml"
    cfg.write_text("n_steps: 8\nbatch_size: 64\n")
    base = ["train-policy", "--predictor", str(pred), "--data", str(data), "--out", str(out),
            "--config", str(cfg), "--n-envs", "32", "--eval-users", "10", "--device", "cpu",
            "--no-progress"]
    assert run_main([*base, "--timesteps", "200"]) == 0
    err = capsys.readouterr().err
    assert "note: --timesteps 200 trains 256 steps (whole rollouts of n_steps 8 x n_envs 32)" \
        in err
    rows_first = len(pd.read_csv(out / "progress.csv"))
    # a kill between the two checkpoint writes: the json already holds a later evaluation
    ck = json.loads((out / "checkpoint.json").read_text())
    ck["history"].append({**ck["history"][-1], "timesteps": 10_000})
    (out / "checkpoint.json").write_text(json.dumps(ck))
    assert run_main([*base, "--timesteps", "512", "--resume"]) == 0
    err = capsys.readouterr().err
    assert "resuming from step 256 of 512" in err
    progress = pd.read_csv(out / "progress.csv")
    assert len(progress) > rows_first
    assert progress["time/total_timesteps"].is_monotonic_increasing
    assert progress["time/total_timesteps"].iloc[0] <= 256 < progress[
        "time/total_timesteps"].iloc[-1]
    assert not list(out.glob("progress.part*.csv"))
    steps = [h["timesteps"] for h in json.loads((out / "metrics.json").read_text())[
        "eval_history"]]
    assert 10_000 not in steps and steps == sorted(steps) and steps[-1] == 512
    assert _mode(out / "model.zip") == 0o666 & ~_umask()


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_progress_rows_logged_after_the_resumed_checkpoint_are_not_repeated(tmp_path: Path
                                                                            ) -> None:
    from agents.train import _merge_progress

    pd.DataFrame({"time/total_timesteps": [256, 512, 768], "a": [1, 2, 3]}).to_csv(
        tmp_path / "progress.part0.csv", index=False)  # killed after 768, checkpoint at 512
    pd.DataFrame({"time/total_timesteps": [768, 1024], "b": [5, 6]}).to_csv(
        tmp_path / "progress.csv", index=False)
    _merge_progress(tmp_path, [tmp_path / "progress.part0.csv"], resumed_at=512)
    merged = pd.read_csv(tmp_path / "progress.csv")
    assert merged["time/total_timesteps"].tolist() == [256, 512, 768, 1024]
    assert [p.name for p in tmp_path.iterdir()] == ["progress.csv"]
