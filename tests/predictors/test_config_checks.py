"""The shared field checks of config dataclasses: what passes, and errors naming field and value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from predictors import ConfigError, check_choice, check_int, check_number


@dataclass(frozen=True)
class _C:
    a: object = 1
    b: object = 2


@pytest.mark.parametrize(("check", "value"), [
    (lambda c: check_int(c, "a", "b", ge=1), _C(1, np.int64(5))),
    (lambda c: check_int(c, "a", ge=-1, le=6), _C(-1)),
    (lambda c: check_int(c, "a", ge=1, optional=True), _C(None)),
    (lambda c: check_number(c, "a", gt=0, lt=1), _C(0.5)),
    (lambda c: check_number(c, "a", ge=0), _C(np.float32(0.0))),
    (lambda c: check_number(c, "a"), _C(-1e300)),
    (lambda c: check_choice(c, "a", ("x", "y")), _C("y")),
])
def test_good_values_pass(check, value) -> None:
    check(value)


@pytest.mark.parametrize(("check", "value", "message"), [
    (lambda c: check_int(c, "a", "b", ge=1), _C(1, 0), "`b` must be an integer >= 1; got 0"),
    (lambda c: check_int(c, "a", ge=1), _C(2.0), "`a` must be an integer >= 1; got 2.0"),
    (lambda c: check_int(c, "a", ge=0), _C(True), "`a` must be an integer >= 0; got True"),
    (lambda c: check_int(c, "a", ge=1, le=6), _C(7), "`a` must be an integer in [1, 6]; got 7"),
    (lambda c: check_int(c, "a", ge=1, optional=True), _C(0),
     "`a` must be an integer >= 1 or None; got 0"),
    (lambda c: check_int(c, "a", ge=1), _C(None), "`a` must be an integer >= 1; got None"),
    (lambda c: check_number(c, "a", gt=0, lt=1), _C(1.5), "`a` must be in (0, 1); got 1.5"),
    (lambda c: check_number(c, "a", ge=0, lt=1), _C(1.0), "`a` must be in [0, 1); got 1.0"),
    (lambda c: check_number(c, "a", gt=0, le=1), _C(0), "`a` must be in (0, 1]; got 0"),
    (lambda c: check_number(c, "a", gt=0), _C(float("nan")), "`a` must be > 0; got nan"),
    (lambda c: check_number(c, "a", ge=0.5), _C("fast"), "`a` must be >= 0.5; got 'fast'"),
    (lambda c: check_number(c, "a", le=2), _C(3), "`a` must be <= 2; got 3"),
    (lambda c: check_number(c, "a"), _C("x"), "`a` must be a number; got 'x'"),
    (lambda c: check_number(c, "a", gt=0, optional=True), _C(-1),
     "`a` must be > 0 or None; got -1"),
    (lambda c: check_choice(c, "a", ("x", "y")), _C("z"),
     "`a` must be one of ('x', 'y'); got 'z'"),
])
def test_bad_values_name_the_field_and_value(check, value, message) -> None:
    with pytest.raises(ConfigError) as info:
        check(value)
    assert str(info.value) == message
    assert isinstance(info.value, ValueError)


def test_a_check_needs_a_field() -> None:
    with pytest.raises(TypeError, match="at least one field"):
        check_int(_C(), ge=1)


def test_config_classes_use_it() -> None:
    """A converted config reports the field and value (here: the predictor's config)."""
    from predictors.models import PredictorConfig

    with pytest.raises(ConfigError, match=r"^`epochs` must be an integer >= 1; got 0$"):
        PredictorConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"^`markov_order` must be an integer in \[1, 6\]"):
        PredictorConfig(markov_order=7)
