"""The executors: same results in input order, clear errors, single-threaded jobs."""

from __future__ import annotations

import pytest

from predictors import ConfigError
from predictors.executors import make_executor, map_ordered


def _square_and_threads(x: int) -> tuple[int, int]:
    import torch

    return x * x, torch.get_num_threads()


@pytest.mark.parametrize("kind", ["serial", "local"])
def test_map_keeps_the_input_order_and_runs_single_threaded(kind: str) -> None:
    ex = make_executor(kind, workers=2)
    try:
        out = map_ordered(ex, _square_and_threads, range(5))
    finally:
        ex.close()
    assert [r[0] for r in out] == [0, 1, 4, 9, 16]
    assert {r[1] for r in out} == {1}


@pytest.mark.parametrize("args, match", [
    (("cluster", 1, None), "--executor must be one of"),
    (("local", 0, None), "--workers must be >= 1"),
    (("local", 2, "auto"), "--address joins a Ray cluster"),
])
def test_bad_executor_options(args: tuple, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_executor(*args)


def test_ray_missing_is_a_clear_error(monkeypatch) -> None:
    import builtins

    real = builtins.__import__

    def no_ray(name, *a, **k):
        if name == "ray":
            raise ImportError("no ray")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    ex = make_executor("ray", workers=1)
    with pytest.raises(ConfigError, match=r"pip install 'nudgegym\[ray\]'"):
        map_ordered(ex, abs, [1])
