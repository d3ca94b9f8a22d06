"""Every bad input of the command line fails cleanly: one ``error:`` line naming the file or
option, exit code 1, no Python exception text, and nothing left in ``--out``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bad_inputs import CASES, build_fixtures, error_line, run_case

#: Text of exceptions that must never reach the user.
RAW = re.compile(r"Traceback|internal error|TypeError|AssertionError|KeyError|"
                 r"UnicodeDecodeError|codec can't decode|No columns to parse|FileExistsError|"
                 r"\[Errno")


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_fixtures(tmp_path_factory.mktemp("bad_inputs"))


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_fails_cleanly(root: Path, case) -> None:
    res = run_case(case, root)
    err = str(res["err"])
    line = error_line(err)
    assert res["rc"] == 1, err
    assert line, f"no error line on stderr: {err!r}"
    assert not line.startswith("error: error:"), line
    assert case.expect in line, line
    assert not RAW.search(err), err
    assert [ln for ln in err.splitlines() if ln.startswith("error: ")] == [line]
    assert res["left"] in ("-", "absent", "unchanged"), res["left"]
