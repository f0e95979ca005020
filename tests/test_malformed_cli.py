"""The malformed-input corpus through the real CLI (SPEC §6: bad input -> exit 2, one line).

Every case of ``tests/malformed_corpus.py`` runs through ``dlcert check`` (typer's CliRunner),
and one case per generator family also through a real subprocess: exit code 2, nothing on
stdout, exactly one line on stderr naming the blamed file and the problem, no traceback. In a
batch, the same bad files become one row each and never hide a good file's verdict.

The one case whose defect is an invalid option value (``--layout sideways``) is a usage error
caught by the option parser before any file is opened: exit 2 and no traceback, but the
message names the option, not a file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from malformed_corpus import Case, generate
from typer.testing import CliRunner

from dlcert.cli import app

ROOT = Path(__file__).resolve().parent.parent


def _cases() -> list[Case]:
    with tempfile.TemporaryDirectory() as tmp:
        return generate(Path(tmp))


ALL = _cases()
NAMES = [c.name for c in ALL if c.kind == "npz"]
USAGE = {c.name for c in ALL if c.layout not in (None, "columns", "rows")}
# one case from each generator family (the name's first word), through a real process
FAMILIES = sorted({c.name.split("-")[0]: c.name for c in reversed(ALL) if c.name not in USAGE}.values())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {case.name: case for case in generate(tmp_path_factory.mktemp("corpus-cli"))}


def argv(case: Case) -> list[str]:
    args = ["check", str(case.weights)]
    if case.data is not None:
        args += ["--data", str(case.data)]
    if case.layout is not None:
        args += ["--layout", case.layout]
    return args


def assert_one_line(case: Case, code: int, stdout: str, stderr: str) -> None:
    assert code == 2, (case.name, code, stdout, stderr)
    assert stdout == "", case.name
    assert "Traceback" not in stderr, stderr
    if case.name in USAGE:
        assert "--layout" in stderr
        return
    assert stderr.endswith("\n") and stderr.count("\n") == 1, repr(stderr)
    line = stderr.rstrip("\n")
    assert line.startswith("dlcert: error: "), line
    assert "\r" not in line
    assert str(case.blamed) in line, line
    for part in case.expect:
        assert part in line, f"{part!r} not in {line!r}"


@pytest.mark.parametrize("name", NAMES)
def test_corpus_case_through_cli(name: str, corpus: dict[str, Case]) -> None:
    case = corpus[name]
    result = CliRunner().invoke(app, argv(case))
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert_one_line(case, result.exit_code, result.stdout, result.stderr)


@pytest.mark.parametrize("name", FAMILIES)
def test_corpus_sample_through_subprocess(name: str, corpus: dict[str, Case]) -> None:
    case = corpus[name]
    proc = subprocess.run([sys.executable, "-m", "dlcert", *argv(case)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert_one_line(case, proc.returncode, proc.stdout, proc.stderr)


def test_whole_corpus_as_one_batch(corpus: dict[str, Case], samples_dir: Path) -> None:
    """All weights-only defects in one batch, with a good file first and last."""
    good = str(samples_dir / "global_full_rank.npz")
    bad = [c for c in corpus.values() if c.data is None and c.layout is None]
    assert len(bad) > 300
    result = CliRunner().invoke(app, ["check", good, *(str(c.weights) for c in bad), good, "-f", "json"])
    assert result.exit_code == 2
    d = json.loads(result.stdout)
    rows = d["checks"]
    assert len(rows) == len(bad) + 2
    assert rows[0]["verdict"] == rows[-1]["verdict"] == "global_minimum"
    for case, row in zip(bad, rows[1:-1], strict=True):
        assert row["status"] == "error" and row["exit_code"] == 2, case.name
        assert row["error"]["kind"] == "input_error"
        assert str(case.blamed) in row["error"]["message"]
    lines = result.stderr.splitlines()
    assert len(lines) == len(bad)
    assert all(line.startswith("dlcert: error: ") for line in lines)
    assert "Traceback" not in result.stderr
