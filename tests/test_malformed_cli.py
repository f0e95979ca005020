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


# --- YAML manifests ---------------------------------------------------------------------------

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
)
YAML_CASES = {
    "root-list": "- weights: m.npz\n",
    "root-scalar": "42\n",
    "root-string": "just text\n",
    "root-null": "",
    "alias-bomb": BOMB,
    "anchor-reuse": "weights: &w m.npz\ndata: *w\n",
    "unknown-key": "weights: m.npz\nlearning_rate: 0.1\n",
    "weights-number": "weights: 3\n",
    "weights-mapping": "weights: {W1: [[1.0]]}\n",
    "tolerances-string": "weights: m.npz\ntolerances: tight\n",
    "tolerances-unknown": "weights: m.npz\ntolerances: {rtol: 1.0e-3}\n",
    "gtol-negative": "weights: m.npz\ntolerances: {gtol: -1}\n",
    "layout-bad": "weights: m.npz\nlayout: sideways\n",
    "inline-ragged": "layers: [[[1.0, 2.0], [3.0]], [[1.0, 1.0]]]\n",
    "inline-strings": "layers: [[['a', 'b']], [[1.0]]]\n",
    "missing-file": "weights: does-not-exist.npz\n",
    "bad-yaml-syntax": "weights: [m.npz\n",
    "tab-indent": "weights:\n\t- m.npz\n",
    "binary": "\x00\x01\x02 not yaml",
}


@pytest.mark.parametrize("name", sorted(YAML_CASES))
def test_bad_manifest_through_cli(name: str, tmp_path: Path, samples_dir: Path) -> None:
    (tmp_path / "m.npz").write_bytes((samples_dir / "strict_saddle.npz").read_bytes())
    path = tmp_path / f"{name}.yaml"
    path.write_text(YAML_CASES[name], encoding="utf-8")
    result = CliRunner().invoke(app, ["check", str(path)])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("dlcert: error: "), result.stderr
    assert "Traceback" not in result.stderr
    assert path.name in result.stderr or "does-not-exist.npz" in result.stderr, result.stderr


def test_bad_manifest_in_batch_is_one_row(tmp_path: Path, samples_dir: Path) -> None:
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    good = tmp_path / "good.yaml"
    good.write_text(f"weights: {samples_dir / 'global_full_rank.npz'}\n")
    result = CliRunner().invoke(app, ["check", str(good), str(bomb), "-f", "json"])
    assert result.exit_code == 2
    rows = json.loads(result.stdout)["checks"]
    assert [r["status"] for r in rows] == ["passed", "error"]
    assert "bomb.yaml" in rows[1]["error"]["message"]
