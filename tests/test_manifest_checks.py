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
    # rows are named by the weights file, then the entry; data is filled in
    assert [c["file"] for c in report["checks"]] == [
        f"{workdir / 'global_full_rank.npz'} ({manifest} checks[1])",
        f"{workdir / 'strict_saddle.npz'} ({manifest} checks[2])",
    ]
    assert [c["data"] for c in report["checks"]] == [
        str(workdir / "global_full_rank.npz"), str(workdir / "strict_saddle.npz")]


def test_rows_and_junit_cases_are_named_by_weights_relative_to_the_cwd(
    runner: CliRunner, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import xml.etree.ElementTree as ET

    (workdir / "runs").mkdir()
    shutil.move(workdir / "strict_saddle.npz", workdir / "runs" / "strict_saddle.npz")
    np_data = workdir / "global_full_rank.npz"
    (workdir / "gate.yaml").write_text(
        f"data: {np_data.name}\nchecks:\n  - weights: global_full_rank.npz\n"
        "  - weights: runs/strict_saddle.npz\n  - layers: [[[1.0, 2.0, 3.0, 4.0]]]\n"
    )
    monkeypatch.chdir(workdir)
    result = runner.invoke(app, ["check", "gate.yaml", "-f", "json", "--junit-xml", "j.xml"])
    rows = json.loads(result.stdout)["checks"]
    names = ["global_full_rank.npz (gate.yaml checks[1])", "runs/strict_saddle.npz (gate.yaml checks[2])",
             "gate.yaml checks[3] (layers)"]
    assert [r["file"] for r in rows] == names
    assert [r["data"] for r in rows] == ["global_full_rank.npz"] * 3
    cases = ET.parse(workdir / "j.xml").getroot().iter("testcase")
    assert [c.get("name") for c in cases] == names


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
