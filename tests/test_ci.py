"""CI conventions: -f github, $GITHUB_STEP_SUMMARY, --output, --color, -q, [tool.dlcert]."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from dlcert.batch import CheckOptions, run_batch, specs_for
from dlcert.ci import find_pyproject, read_defaults
from dlcert.cli import app
from dlcert.errors import InputError
from dlcert.gate import Requirement
from dlcert.render.github import GithubRenderer, MarkdownSummary, escape_data, escape_property

ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def sample(samples_dir: Path) -> dict[str, Path]:
    return {n: samples_dir / f"{n}.npz" for n in ("global_full_rank", "strict_saddle", "not_critical")}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No colour variables or step summary from the machine running the tests; no pyproject."""
    for var in ("NO_COLOR", "FORCE_COLOR", "GITHUB_STEP_SUMMARY", "TTY_COMPATIBLE"):
        monkeypatch.delenv(var, raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)


# --- -f github ------------------------------------------------------------------------------


def test_github_annotations_one_per_failing_file(runner: CliRunner, sample: dict[str, Path],
                                                 tmp_path: Path) -> None:
    bad = tmp_path / "bad, file:1.npz"
    bad.write_bytes(b"not a zip")
    files = [*map(str, sample.values()), str(bad)]
    res = runner.invoke(app, ["check", *files, "-f", "github"])
    assert res.exit_code == 2
    lines = res.stdout.splitlines()
    errors = [ln for ln in lines if ln.startswith("::error ")]
    assert len(errors) == 3 and len(lines) == 4
    parsed = [re.fullmatch(r"::error file=([^,]*),title=([^,:]*)::(.*)", ln) for ln in errors]
    assert all(parsed)
    got = {escape_property_inverse(m.group(1)): escape_property_inverse(m.group(2)) for m in parsed if m}
    assert got == {
        str(sample["strict_saddle"]): "dlcert: strict_saddle (exit 3)",
        str(sample["not_critical"]): "dlcert: not_critical (exit 4)",
        str(bad): "dlcert: input error (exit 2)",
    }
    assert lines[-1] == "dlcert check: 4 checks, require global: 1 passed, 2 failed, 1 errors; exit 2"


def escape_property_inverse(text: str) -> str:
    for a, b in (("%2C", ","), ("%3A", ":"), ("%0A", "\n"), ("%0D", "\r"), ("%25", "%")):
        text = text.replace(a, b)
    return text


def test_workflow_command_escaping() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a,b:c%") == "a%2Cb%3Ac%25"
    assert escape_property_inverse(escape_property("x,y:z%\n")) == "x,y:z%\n"


def test_github_single_passing_check_prints_only_the_summary(runner: CliRunner, sample: dict[str, Path]) -> None:
    res = runner.invoke(app, ["check", str(sample["strict_saddle"]), "-f", "github", "--require", "critical"])
    assert res.exit_code == 0
    assert res.stdout.splitlines() == ["dlcert check: 1 checks, require critical: 1 passed, 0 failed, 0 errors; exit 0"]


# --- step summary ---------------------------------------------------------------------------


def test_step_summary_is_appended_when_set(runner: CliRunner, sample: dict[str, Path], tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("# before\n")
    env = {"GITHUB_STEP_SUMMARY": str(summary)}
    res = runner.invoke(app, ["check", *map(str, sample.values())], env=env)
    assert res.exit_code == 4
    res = runner.invoke(app, ["check", str(sample["global_full_rank"])], env=env)
    assert res.exit_code == 0
    md = summary.read_text()
    assert md.startswith("# before\n")
    assert md.count("### ") == 2 and "### ❌ dlcert check: exit 4" in md and "### ✅ dlcert check: exit 0" in md
    assert "`--require global`" in md and "1 passed, 2 failed, 0 errors" in md
    assert md.count("| file | verdict |") == 2


def test_no_step_summary_when_unset(runner: CliRunner, sample: dict[str, Path], tmp_path: Path) -> None:
    res = runner.invoke(app, ["check", str(sample["global_full_rank"])])
    assert res.exit_code == 0
    assert list(tmp_path.glob("**/*.md")) == []


def test_markdown_cells_are_escaped(sample: dict[str, Path], tmp_path: Path) -> None:
    odd = tmp_path / "a|b<c>.npz"
    odd.write_bytes(sample["global_full_rank"].read_bytes())
    batch = run_batch(specs_for([odd], None, CheckOptions()), Requirement.GLOBAL)
    row = next(ln for ln in MarkdownSummary().render(batch).splitlines() if "a\\|b" in ln)
    assert "&lt;c&gt;" in row and len(re.split(r"(?<!\\)\|", row.strip("|"))) == 6
    assert GithubRenderer().render(batch).splitlines()[-1].endswith("exit 0")


# --- --output, -q, --color --------------------------------------------------------------------


@pytest.mark.parametrize(("name", "loader"), [("report.json", json.loads), ("report.yaml", yaml.safe_load)])
def test_output_file_with_text_on_the_terminal(runner: CliRunner, sample: dict[str, Path], name: str,
                                               loader: object) -> None:
    res = runner.invoke(app, ["check", str(sample["strict_saddle"]), "--output", name])
    assert res.exit_code == 3
    assert "STRICT SADDLE" in res.stdout  # the text report still goes to the terminal
    report = loader(Path(name).read_text())  # type: ignore[operator]
    assert report["schema"] == "dlcert.check/1" and report["verdict"] == "strict_saddle"
    res = runner.invoke(app, ["check", *map(str, sample.values()), "-o", name])
    report = loader(Path(name).read_text())  # type: ignore[operator]
    assert report["schema"] == "dlcert.batch/1" and len(report["checks"]) == 3 and report["exit_code"] == 4


def test_output_follows_the_umask(runner: CliRunner, sample: dict[str, Path]) -> None:
    import os

    old = os.umask(0o022)
    try:
        runner.invoke(app, ["check", str(sample["global_full_rank"]), "-o", "r.json"])
    finally:
        os.umask(old)
    assert Path("r.json").stat().st_mode & 0o777 == 0o644
    assert not [p for p in Path().iterdir() if p.name.endswith(".tmp")]


def test_output_to_a_missing_directory_is_one_line(runner: CliRunner, sample: dict[str, Path]) -> None:
    res = runner.invoke(app, ["check", str(sample["global_full_rank"]), "-o", "no/such/dir/r.json"])
    assert res.exit_code == 2
    assert res.stderr.startswith("dlcert: error: no/such/dir/r.json: cannot write the report")
    assert len(res.stderr.splitlines()) == 1


def test_quiet_silences_the_text_but_not_machine_output(runner: CliRunner, sample: dict[str, Path]) -> None:
    res = runner.invoke(app, ["check", str(sample["not_critical"]), "-q", "--witness", "w.npz"])
    assert res.exit_code == 4 and res.stdout == "" and res.stderr == ""
    res = runner.invoke(app, ["check", str(sample["not_critical"]), "-q", "-f", "json"])
    assert json.loads(res.stdout)["verdict"] == "not_critical"
    res = runner.invoke(app, ["check", str(sample["not_critical"]), "--witness", "w.npz"])
    assert "note: no witness saved" in res.stderr


@pytest.mark.parametrize(
    ("args", "env", "colored"),
    [
        ([], {}, False),  # not a terminal
        ([], {"FORCE_COLOR": "1"}, True),
        ([], {"FORCE_COLOR": "1", "NO_COLOR": "1"}, False),
        (["--color", "always"], {}, True),
        (["--color", "always"], {"NO_COLOR": "1"}, True),  # an explicit flag wins
        (["--color", "never"], {"FORCE_COLOR": "1"}, False),
    ],
)
def test_color(runner: CliRunner, sample: dict[str, Path], args: list[str], env: dict[str, str],
               colored: bool) -> None:
    res = runner.invoke(app, ["check", str(sample["strict_saddle"]), *args], env=env)
    assert res.exit_code == 3
    assert bool(ANSI.search(res.stdout)) == colored
    assert "STRICT SADDLE" in ANSI.sub("", res.stdout)


def test_color_never_touches_json(runner: CliRunner, sample: dict[str, Path]) -> None:
    res = runner.invoke(app, ["check", str(sample["strict_saddle"]), "-f", "json", "--color", "always"])
    assert "\x1b" not in res.stdout and json.loads(res.stdout)["verdict"] == "strict_saddle"


@pytest.mark.parametrize("env", [{}, {"FORCE_COLOR": "1"}])  # FORCE_COLOR colours a CI log; no bars there
def test_no_progress_when_stderr_is_not_a_terminal(runner: CliRunner, sample: dict[str, Path],
                                                   env: dict[str, str]) -> None:
    res = runner.invoke(app, ["check", *map(str, sample.values())], env=env)
    assert res.stderr == ""
    res = runner.invoke(app, ["landscape", str(sample["strict_saddle"]), "--widths", "4,3,3", "--trials", "1"],
                        env=env)
    assert res.exit_code == 0 and res.stderr == ""


# --- [tool.dlcert] in pyproject.toml -----------------------------------------------------------


def test_defaults_from_the_nearest_pyproject(runner: CliRunner, sample: dict[str, Path]) -> None:
    Path("pyproject.toml").write_text('[project]\nname = "x"\n\n[tool.dlcert]\nrequire = "critical"\n'
                                      'format = "json"\ngtol = 1e-5\n')
    sub = Path("deep/er")
    sub.mkdir(parents=True)
    assert find_pyproject(sub) == Path("pyproject.toml").resolve()
    res = runner.invoke(app, ["check", str(sample["strict_saddle"])])
    assert res.exit_code == 0  # require = critical
    d = json.loads(res.stdout)  # format = json
    assert d["tolerances"]["gtol"] == 1e-5
    res = runner.invoke(app, ["check", str(sample["strict_saddle"]), "--require", "global", "-f", "text"])
    assert res.exit_code == 3 and "STRICT SADDLE" in res.stdout  # the command line wins


def test_pyproject_without_a_dlcert_table_changes_nothing(tmp_path: Path) -> None:
    p = tmp_path / "pyproject.toml"
    p.write_text('[tool.ruff]\nline-length = 100\n')
    assert read_defaults(p) == {}


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('requires = "global"', "[tool.dlcert]: unknown key(s) 'requires'; allowed keys: require, format,"),
        ('require = "strict"', "[tool.dlcert] require must be one of global, critical, decided, any, got 'strict'"),
        ("gtol = 2.0", "[tool.dlcert] gtol must be a number in (0, 1), got 2.0"),
        ('gtol = "1e-3"', "[tool.dlcert] gtol must be a number, got '1e-3'"),
        ("quiet = 1", "[tool.dlcert] quiet must be true or false, got 1"),
    ],
)
def test_bad_pyproject_is_one_line(runner: CliRunner, sample: dict[str, Path], table: str, message: str) -> None:
    Path("pyproject.toml").write_text(f"[tool.dlcert]\n{table}\n")
    with pytest.raises(InputError) as exc:
        read_defaults(Path("pyproject.toml"))
    assert message in str(exc.value)
    res = runner.invoke(app, ["check", str(sample["global_full_rank"])])
    assert res.exit_code == 2 and len(res.stderr.splitlines()) == 1 and message in res.stderr


def test_github_format_default_does_not_break_landscape(tmp_path: Path) -> None:
    p = tmp_path / "pyproject.toml"
    p.write_text('[tool.dlcert]\nformat = "github"\ncolor = "never"\n')
    d = read_defaults(p)
    assert d["check"] == {"fmt": "github", "color": "never"}
    assert d["landscape"] == {"color": "never"}


# --- landscape and a check manifest -----------------------------------------------------------


def test_landscape_reads_a_check_manifest(runner: CliRunner, sample: dict[str, Path]) -> None:
    Path("run.yaml").write_text(f"weights: {sample['strict_saddle']}\ntolerances: {{gtol: 1e-6}}\n")
    res = runner.invoke(app, ["landscape", "run.yaml", "-f", "json", "-o", "ls.json"])
    assert res.exit_code == 0, res.stderr
    d = json.loads(res.stdout)
    assert d["schema"] == "dlcert.landscape/1" and json.loads(Path("ls.json").read_text()) == d
    check = json.loads(runner.invoke(app, ["check", "run.yaml", "-f", "json"]).stdout)
    assert d["widths"] == check["widths"] and d["optimal_loss"] == pytest.approx(check["optimal_loss"])


def test_save_optimum_says_what_it_wrote(runner: CliRunner, sample: dict[str, Path]) -> None:
    res = runner.invoke(app, ["landscape", str(sample["strict_saddle"]), "--widths", "4,3,3",
                              "--save-optimum", "opt.npz"])
    assert res.exit_code == 0 and Path("opt.npz").exists()
    assert res.stderr.startswith("dlcert: note: wrote opt.npz: a balanced global minimiser W1..W2 (L* = ")
    res = runner.invoke(app, ["landscape", str(sample["strict_saddle"]), "--widths", "4,3,3",
                              "--save-optimum", "opt2.npz", "-q"])
    assert res.exit_code == 0 and res.stderr == "" and res.stdout == ""
