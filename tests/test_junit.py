"""JUnit XML (``--junit-xml``) and the CI examples (GitHub Actions job, pre-commit hooks)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from constructions import construct, random_data
from typer.testing import CliRunner

from dlcert.batch import CheckOptions, Requirement, run_batch, specs_for
from dlcert.cli import app
from dlcert.junit import junit_xml, xml_text
from dlcert.statistics import Statistics

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def files(samples_dir: Path, tmp_path: Path) -> list[Path]:
    bad = tmp_path / "truncated.npz"
    bad.write_bytes((samples_dir / "strict_saddle.npz").read_bytes()[:100])
    return [
        samples_dir / "global_full_rank.npz",
        samples_dir / "strict_saddle.npz",
        samples_dir / "not_critical.npz",
        bad,
    ]


def parse(path: Path) -> ET.Element:
    return ET.parse(path).getroot()


def check_schema(root: ET.Element) -> ET.Element:
    """The elements and attributes JUnit consumers read; returns the single testsuite."""
    assert root.tag == "testsuites"
    suites = root.findall("testsuite")
    assert len(suites) == 1
    suite = suites[0]
    cases = suite.findall("testcase")
    for el in (root, suite):
        for attr in ("tests", "failures", "errors", "time"):
            assert attr in el.attrib, attr
        assert int(el.get("tests", "")) == len(cases)
        assert int(el.get("failures", "")) == sum(c.find("failure") is not None for c in cases)
        assert int(el.get("errors", "")) == sum(c.find("error") is not None for c in cases)
        assert float(el.get("time", "")) >= 0
    assert suite.get("name") == "dlcert check"
    assert suite.get("timestamp")
    for case in cases:
        assert case.get("name") and case.get("classname") == "dlcert.check"
        assert float(case.get("time", "")) >= 0
        outcomes = [c for c in case if c.tag in ("failure", "error", "skipped")]
        assert len(outcomes) <= 1
        for o in outcomes:
            assert o.get("message") and o.get("type")
    return suite


def test_failing_batch_parses(runner: CliRunner, files: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report.xml"
    result = runner.invoke(app, ["check", *map(str, files), "--junit-xml", str(out)])
    assert result.exit_code == 2  # the truncated file is the most severe
    suite = check_schema(parse(out))
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == [str(f) for f in files]
    passed, saddle, not_critical, bad = cases
    assert list(passed.iter("failure")) == [] and list(passed.iter("error")) == []
    f = saddle.find("failure")
    assert f is not None and f.get("type") == "strict_saddle"
    assert f.get("message", "").startswith("strict_saddle: strict saddle: order-2 escape")
    assert "relative gap" in (f.text or "") and "required: global" in (f.text or "")
    f = not_critical.find("failure")
    assert f is not None and f.get("type") == "not_critical"
    e = bad.find("error")
    assert e is not None and e.get("type") == "input_error" and "truncated.npz" in e.get("message", "")
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "2", "1")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props == {"require": "global", "exit_code": "2"}


@pytest.mark.parametrize(("require", "failures"), [("global", 2), ("critical", 1), ("any", 0)])
def test_require_drives_failures(
    runner: CliRunner, files: list[Path], tmp_path: Path, require: str, failures: int
) -> None:
    out = tmp_path / "report.xml"
    runner.invoke(app, ["check", *map(str, files[:3]), "--require", require, "--junit-xml", str(out)])
    suite = check_schema(parse(out))
    assert int(suite.get("failures", "")) == failures
    assert int(suite.get("errors", "")) == 0


def test_single_file_error_still_writes_junit(runner: CliRunner, files: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report.xml"
    result = runner.invoke(app, ["check", str(files[-1]), "--junit-xml", str(out)])
    assert result.exit_code == 2 and result.stdout == "" and result.stderr.count("\n") == 1
    suite = check_schema(parse(out))
    assert suite.get("errors") == "1"


def test_unwritable_junit_path_is_input_error(runner: CliRunner, files: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "missing-dir" / "report.xml"
    result = runner.invoke(app, ["check", str(files[0]), "--junit-xml", str(out)])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "report.xml" in result.stderr
    assert "Traceback" not in result.stderr


def test_hostile_file_names_still_parse(samples_dir: Path, tmp_path: Path) -> None:
    """Control characters, markup and undecodable bytes in paths never break the XML."""
    names = ["a<b>&\"'.npz", "ctl\x01\x1b[31m.npz", "tab\tnew.npz"]
    paths = []
    for n in names:
        p = tmp_path / n
        shutil.copy(samples_dir / "strict_saddle.npz", p)
        paths.append(p)
    raw = os.fsencode(tmp_path) + b"/bad-\xff.npz"
    with open(raw, "wb") as f:
        f.write(b"not a zip")
    paths.append(Path(os.fsdecode(raw)))
    batch = run_batch(specs_for(paths, None, CheckOptions()), Requirement.GLOBAL)
    text = junit_xml(batch)
    root = ET.fromstring(text.encode("utf-8"))
    suite = check_schema(root)
    got = [c.get("name") for c in suite.iter("testcase")]
    assert got[0] == str(paths[0])
    assert "\\x01" in (got[1] or "") and "\\x1b" in (got[1] or "")
    assert suite.get("errors") == "1" and suite.get("failures") == "3"


def test_xml_text_keeps_valid_characters() -> None:
    s = "plain ünïcødé \t\n λ 𝔏 "
    assert xml_text(s) == s
    assert xml_text("a\x00b\x08c\ud800") == "a\\x00b\\x08c\\xd800"


# --- examples: GitHub Actions job and pre-commit hooks --------------------------------------


def assert_cli_accepts(argv: list[str]) -> None:
    """``argv`` (starting at ``dlcert``) names a real command and options it accepts."""
    assert argv[0] == "dlcert", argv
    group = typer.main.get_command(app)
    name, *rest = argv[1:]
    commands = getattr(group, "commands", {})
    assert name in commands, f"no command {name!r}; have {sorted(commands)}"
    commands[name].make_context(name, list(rest))  # raises a usage error on unknown options/values


def _dlcert_lines(script: str) -> list[list[str]]:
    out = []
    for line in script.splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "dlcert":
            out.append(words[: words.index(">")] if ">" in words else words)
    return out


def test_github_actions_example_uses_real_commands() -> None:
    wf = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    steps = [s for job in wf["jobs"].values() for s in job["steps"]]
    runs = [s["run"] for s in steps if "run" in s]
    commands = [c for r in runs for c in _dlcert_lines(r)]
    assert commands, "the workflow never runs dlcert"
    for argv in commands:
        assert_cli_accepts(argv)
    assert any("--junit-xml" in argv for argv in commands)
    junit = next(argv[argv.index("--junit-xml") + 1] for argv in commands if "--junit-xml" in argv)
    published = [s for s in steps if "junit" in str(s.get("with", {})).lower()]
    assert any(junit in str(s["with"]) for s in published), "the JUnit report is not published"
    assert any("pip install" in r for r in runs)


def _dlcert_shim(tmp_path: Path) -> dict[str, str]:
    """A PATH where ``dlcert`` runs this checkout's code (as the installed script would)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "dlcert"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dlcert "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


# index sets of constructed critical points for widths (4, 2, 3): {1, 2} is the top set.
CHECKPOINTS = {"global": (1, 2), "strict": (1, 3)}


@pytest.mark.parametrize(("weights", "code"), [(("global",), 0), (("global", "strict"), 3)])
def test_github_actions_gate_step_runs(tmp_path: Path, weights: tuple[str, ...], code: int) -> None:
    """Run the workflow's gate step verbatim (bash -eo pipefail, as GitHub does) in a repo layout."""
    wf = yaml.safe_load((ROOT / "examples" / "github-actions.yml").read_text())
    step = next(s for job in wf["jobs"].values() for s in job["steps"] if "dlcert check" in s.get("run", ""))
    work = tmp_path / "repo"
    (work / "checkpoints").mkdir(parents=True)
    (work / "data").mkdir()
    rng = np.random.default_rng(7)
    X, Y = random_data(rng, 4, 3, 40)
    np.savez(work / "data" / "train.npz", X=X, Y=Y)
    stats = Statistics.from_data(X, Y)
    for name in weights:
        point = construct(rng, stats, [4, 2, 3], CHECKPOINTS[name])
        assert point is not None
        np.savez(work / "checkpoints" / f"{name}.npz", **{f"W{i}": w for i, w in enumerate(point.weights, 1)})
    env = _dlcert_shim(tmp_path)
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    env["GITHUB_STEP_SUMMARY"] = str(summary)
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == code, proc.stderr
    check_schema(parse(work / "dlcert-junit.xml"))
    # annotations: one ::error per failing file, naming it; then one plain summary line
    lines = proc.stdout.splitlines()
    errors = [ln for ln in lines if ln.startswith("::error ")]
    failing = sorted(f"checkpoints/{n}.npz" for n in weights if n != "global")
    files = [re.match(r"::error file=([^,]+),", ln) for ln in errors]
    assert sorted(m.group(1) for m in files if m) == failing and all(files)
    for ln in errors:
        assert "title=dlcert%3A strict_saddle (exit 3)::" in ln and "does not meet --require global" in ln
    assert lines[-1].startswith(f"dlcert check: {len(weights)} checks, require global")
    assert len(lines) == len(errors) + 1
    # the step summary: appended (the earlier step's text kept), one table row per file
    md = summary.read_text()
    assert md.startswith("earlier step\n### ") and f"dlcert check: exit {code}" in md
    rows = [ln for ln in md.splitlines() if ln.startswith("| <code>checkpoints/")]
    assert len(rows) == len(weights)
    for ln in rows:
        cells = [c.strip() for c in ln.strip("|").split("|")]
        name = cells[0].removeprefix("<code>checkpoints/").removesuffix(".npz</code>")
        assert cells[1] == ("global_minimum" if name == "global" else "strict_saddle")
        assert cells[4:] == (["0", "pass"] if name == "global" else ["3", "FAIL"])
    report = json.loads((work / "dlcert-report.json").read_text())
    assert report["schema"] == ("dlcert.check/1" if len(weights) == 1 else "dlcert.batch/1")


def test_pre_commit_hooks_use_real_commands() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert isinstance(hooks, list) and hooks
    required = {"id", "name", "entry", "language"}
    for hook in hooks:
        assert required <= set(hook), hook
        assert hook["language"] == "python"
        assert hook["pass_filenames"] is True
        assert_cli_accepts([*shlex.split(hook["entry"]), "weights.npz"])
    config = yaml.safe_load((ROOT / "examples" / "pre-commit-config.yaml").read_text())
    ids = {h["id"] for h in hooks}
    for repo in config["repos"]:
        for hook in repo["hooks"]:
            assert hook["id"] in ids
            entry = next(h["entry"] for h in hooks if h["id"] == hook["id"])
            assert_cli_accepts([*shlex.split(entry), *hook.get("args", []), "a.npz", "b.npz"])


def test_pre_commit_hook_runs_like_pre_commit(samples_dir: Path, tmp_path: Path) -> None:
    """pre-commit runs ``entry args filenames``: the gate passes minima and refuses saddles."""
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    env = _dlcert_shim(tmp_path)
    for hook_id, names, code in [
        ("dlcert-check", ["global_full_rank", "global_bottleneck"], 0),
        ("dlcert-check", ["global_full_rank", "strict_saddle"], 3),
        ("dlcert-check-critical", ["global_full_rank", "strict_saddle"], 0),
        ("dlcert-check-critical", ["not_critical"], 4),
    ]:
        argv = [*shlex.split(hooks[hook_id]["entry"]), *(str(samples_dir / f"{n}.npz") for n in names)]
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == code, (hook_id, names, proc.stderr)


def test_reason_text_reads_strings_and_reason_objects() -> None:
    from dataclasses import dataclass

    from dlcert.junit import reason_text

    @dataclass
    class Reason:
        code: str
        message: str

    assert reason_text("a plain note") == "a plain note"
    assert reason_text(Reason("rank_ambiguous", "rank within 10x of its cutoff")) == (
        "rank_ambiguous: rank within 10x of its cutoff")
    assert reason_text({"code": "tie", "message": "s_k = s_k+1"}) == "tie: s_k = s_k+1"
