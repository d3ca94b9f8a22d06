"""An ensemble run folder (train-predictor --ensemble K) pairs with its dataset like one
predictor."""

from __future__ import annotations

import pytest

from predictors.fingerprint import check_pair


def test_check_pair_accepts_an_ensemble_folder_and_refuses_an_empty_one(tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ens = tmp_path / "ens"
    ens.mkdir()
    with pytest.raises(FileNotFoundError, match="not a predictor run folder"):
        check_pair(ens, data)
    (ens / "ensemble.json").write_text('{"members": ["member_0", "member_1"]}')
    check_pair(ens, data)  # no config.json: nothing to compare, accepted
