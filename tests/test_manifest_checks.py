"""A YAML manifest listing several checks: one row per entry, defaults from the top level."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlcert.cli import app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def workdir(samples_dir: Path, tmp_path: Path) -> Path:
    for name in ("global_full_rank", "strict_saddle"):
        shutil.copy(samples_dir / f"{name}.npz", tmp_path / f"{name}.npz")
    return tmp_path


def test_each_entry_is_a_row(runner: CliRunner, workdir: Path) -> None:
    manifest = workdir / "run.yaml"
    manifest.write_text(
        "tolerances: {gtol: 1.0e-6}\n"
        "checks:\n"
        "  - weights: global_full_rank.npz\n"
        "  - weights: strict_saddle.npz\n"
        "    tolerances: {gtol: 1.0e-5}\n"
    )
    result = runner.invoke(app, ["check", str(manifest), "-f", "json"])
    assert result.exit_code == 3, result.stderr
    report = json.loads(result.stdout)
    assert [c["verdict"] for c in report["checks"]] == ["global_minimum", "strict_saddle"]
    assert [c["check"]["tolerances"]["gtol"] for c in report["checks"]] == [1e-6, 1e-5]
    assert report["checks"][0]["file"].endswith("run.yaml [checks 1]")


def test_one_bad_entry_does_not_hide_the_others(runner: CliRunner, workdir: Path) -> None:
    manifest = workdir / "run.yaml"
    manifest.write_text("checks:\n  - weights: global_full_rank.npz\n  - weights: missing.npz\n")
    result = runner.invoke(app, ["check", str(manifest), "-f", "json"])
    assert result.exit_code == 2
    rows = json.loads(result.stdout)["checks"]
    assert rows[0]["verdict"] == "global_minimum"
    assert rows[1]["error"]["kind"] == "input_error" and "missing.npz" in rows[1]["error"]["message"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("checks: []\n", "non-empty list"),
        ("checks: {weights: a.npz}\n", "non-empty list"),
        ("checks:\n  - 3\n", "checks[1] must be a mapping"),
        ("checks:\n  - weights: a.npz\n    widths: [1, 2]\n", "unknown key"),
        ("widths: [4, 3]\nchecks:\n  - weights: a.npz\n", "widths is for dlcert landscape"),
    ],
)
def test_malformed_lists_are_one_line_errors(
    runner: CliRunner, tmp_path: Path, text: str, needle: str
) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(text)
    result = runner.invoke(app, ["check", str(manifest)])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "bad.yaml" in lines[0]


def test_landscape_refuses_a_list(runner: CliRunner, workdir: Path) -> None:
    manifest = workdir / "run.yaml"
    manifest.write_text("checks:\n  - weights: global_full_rank.npz\n")
    result = runner.invoke(app, ["landscape", str(manifest), "--widths", "4,5,3"])
    assert result.exit_code == 2 and "several checks" in result.stderr
