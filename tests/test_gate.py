"""The gate (``--require``): the (require x verdict) -> exit table, everywhere it is stated."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcert.batch import CheckOutcome
from dlcert.certificate import ExitCode, Verdict
from dlcert.cli import app
from dlcert.gate import (
    PASSING,
    Requirement,
    gate_exit,
    gate_table_markdown,
    gate_table_text,
    passes,
)
from dlcert.render import Format, renderer_for

ROOT = Path(__file__).resolve().parent.parent

G, S, NS, NC, INC = (Verdict.GLOBAL_MINIMUM, Verdict.STRICT_SADDLE, Verdict.NON_STRICT_SADDLE,
                     Verdict.NOT_CRITICAL, Verdict.INCONCLUSIVE)

# Written out by hand (not derived from dlcert.gate): a requirement passes only what was shown.
EXPECTED = {
    Requirement.GLOBAL: {G: 0, S: 3, NS: 3, NC: 4, INC: 5},
    Requirement.CRITICAL: {G: 0, S: 0, NS: 0, NC: 4, INC: 5},
    Requirement.DECIDED: {G: 0, S: 0, NS: 0, NC: 0, INC: 5},
    Requirement.ANY: {G: 0, S: 0, NS: 0, NC: 0, INC: 0},
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_the_table_covers_every_pair() -> None:
    assert set(EXPECTED) == set(Requirement)
    assert all(set(row) == set(Verdict) for row in EXPECTED.values())


@pytest.mark.parametrize("requirement", list(Requirement))
@pytest.mark.parametrize("verdict", list(Verdict))
def test_gate_exit_exhaustive(requirement: Requirement, verdict: Verdict) -> None:
    code = gate_exit(requirement, verdict)
    assert isinstance(code, ExitCode)
    assert int(code) == EXPECTED[requirement][verdict]
    assert passes(requirement, verdict) == (code == ExitCode.OK)
    if not passes(requirement, verdict):
        assert code == verdict.exit_code  # a failure keeps the verdict's SPEC §7 code


def test_inconclusive_passes_only_any() -> None:
    assert [r for r in Requirement if passes(r, INC)] == [Requirement.ANY]


def test_levels_are_nested() -> None:
    levels = list(Requirement)
    for tighter, looser in itertools.pairwise(levels):
        assert PASSING[tighter] < PASSING[looser]


def test_global_requirement_is_exactly_spec_exit_codes() -> None:
    for v in Verdict:
        assert gate_exit(Requirement.GLOBAL, v) == v.exit_code


def parse_text_table(text: str) -> dict[str, list[int]]:
    rows = {}
    for line in text.splitlines():
        words = line.split()
        if words and words[0] in {r.value for r in Requirement} and all(w.isdigit() for w in words[1:]):
            rows[words[0]] = [int(w) for w in words[1:]]
    return rows


def expected_rows() -> dict[str, list[int]]:
    return {r.value: [EXPECTED[r][v] for v in Verdict] for r in Requirement}


def test_text_table_and_help_state_the_table(runner: CliRunner) -> None:
    assert parse_text_table(gate_table_text()) == expected_rows()
    res = runner.invoke(app, ["check", "--help"], env={"COLUMNS": "100"})
    assert res.exit_code == 0
    help_rows = {}
    for line in res.stdout.splitlines():
        help_rows.update(parse_text_table(line.strip(" │")))
    assert help_rows == expected_rows()


def test_docs_ci_md_holds_the_table() -> None:
    doc = (ROOT / "docs" / "ci.md").read_text()
    assert gate_table_markdown() in doc
    rows = {}
    for line in gate_table_markdown().splitlines()[2:]:
        cells = [c.strip(" `") for c in line.strip("|").split("|")]
        rows[cells[0]] = [int(c) for c in cells[1:]]
    assert rows == expected_rows()
    header = [c.strip(" `") for c in gate_table_markdown().splitlines()[0].strip("|").split("|")]
    assert header[1:] == [v.value for v in Verdict]


@pytest.mark.parametrize("command", ["landscape", "stats"])
def test_help_of_commands_without_verdicts_lists_only_their_codes(runner: CliRunner, command: str) -> None:
    res = runner.invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    text = " ".join(res.stdout.split())
    assert "0 success, 2 usage or input error, 1 internal error" in text
    for word in ("saddle", "inconclusive", "not critical"):
        assert word not in text.lower().split("exit codes:")[-1], word


# --- the process's exit code is the one the report prints -----------------------------------


@pytest.mark.parametrize(("require", "code"), [("global", 3), ("critical", 0), ("decided", 0), ("any", 0)])
def test_panel_prints_the_code_the_process_returns(
    runner: CliRunner, samples_dir: Path, require: str, code: int
) -> None:
    res = runner.invoke(app, ["check", str(samples_dir / "strict_saddle.npz"), "--require", require])
    assert res.exit_code == code
    head = re.search(r"STRICT SADDLE\s+exit (\d+)", res.stdout)
    assert head is not None and int(head.group(1)) == code
    if code == 0:
        assert f"passes --require {require}" in res.stdout


def write_bf16_safetensors(path: Path, weights: list[np.ndarray]) -> Path:
    """A safetensors file of bfloat16 tensors (the upper 16 bits of float32)."""
    header: dict[str, object] = {}
    raw = b""
    for i, w in enumerate(weights):
        words = (w.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[f"{i}.weight"] = {"dtype": "BF16", "shape": list(w.shape),
                                 "data_offsets": [len(raw), len(raw) + len(words)]}
        raw += words
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + raw)
    return path


@pytest.fixture
def random_bf16(tmp_path: Path) -> tuple[Path, Path]:
    """The issue's case: a random bfloat16 model (float64 data)."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 50))
    Y = rng.standard_normal((3, 4)) @ X + 0.1 * rng.standard_normal((3, 50))
    np.savez(tmp_path / "data.npz", X=X, Y=Y)
    ws = [0.3 * rng.standard_normal(s) for s in ((3, 4), (3, 3), (3, 3))]
    return write_bf16_safetensors(tmp_path / "m.safetensors", ws), tmp_path / "data.npz"


def imprecise_bf16(folder: Path, cond: float = 100.0) -> tuple[Path, Path]:
    """A global minimum whose layers are related by changes of basis of condition ``cond``,
    stored in bfloat16: rounding the weights can explain a relative gradient far above 1e-2, so
    the stored numbers cannot show whether the point is critical."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((4, 50))
    Y = rng.standard_normal((3, 4)) @ X + 0.1 * rng.standard_normal((3, 50))
    np.savez(folder / "data.npz", X=X, Y=Y)
    R = np.linalg.solve(X @ X.T, X @ Y.T).T  # the least-squares product: a global minimum

    def change_of_basis() -> np.ndarray:
        q1, q2 = (np.linalg.qr(rng.standard_normal((3, 3)))[0] for _ in range(2))
        return q1 @ np.diag(np.geomspace(1.0, cond, 3)) @ q2

    G1, G2 = change_of_basis(), change_of_basis()
    ws = [G1 @ R, G2 @ np.linalg.inv(G1), np.linalg.inv(G2)]
    return write_bf16_safetensors(folder / "m.safetensors", ws), folder / "data.npz"


@pytest.mark.parametrize("require", list(Requirement))
def test_random_bf16_model_is_not_critical(
    runner: CliRunner, random_bf16: tuple[Path, Path], require: Requirement
) -> None:
    model, data = random_bf16
    res = runner.invoke(app, ["check", str(model), "--data", str(data), "-f", "json",
                              "--require", require.value])
    report = json.loads(res.stdout)
    assert (report["verdict"], report["rule"]) == ("not_critical", "not_critical.gradient")
    assert report["tolerances"]["weights_eps"] == 2.0**-7
    assert report["tolerances"]["eps"] == float(np.finfo(np.float64).eps)  # the data's
    fails = require in (Requirement.GLOBAL, Requirement.CRITICAL)
    assert res.exit_code == (4 if fails else 0)


@pytest.mark.parametrize("require", list(Requirement))
def test_bf16_point_its_precision_cannot_decide_fails_all_but_any(
    runner: CliRunner, tmp_path: Path, require: Requirement
) -> None:
    model, data = imprecise_bf16(tmp_path)
    res = runner.invoke(app, ["check", str(model), "--data", str(data), "-f", "json",
                              "--require", require.value])
    report = json.loads(res.stdout)
    assert (report["verdict"], report["rule"]) == ("inconclusive", "inconclusive.precision_floor")
    ev = report["evidence"]
    assert ev["gtol"] < ev["relative_gradient"] <= ev["gradient_floor"]
    assert res.exit_code == (0 if require is Requirement.ANY else 5)


def test_text_renderer_of_an_outcome_uses_the_gate(samples_dir: Path) -> None:
    from dlcert.batch import CheckOptions, run_batch, specs_for

    batch = run_batch(specs_for([samples_dir / "non_strict_saddle.npz"], None, CheckOptions()),
                      Requirement.CRITICAL)
    outcome: CheckOutcome = batch.checks[0]
    text = renderer_for(Format.TEXT).render(outcome)
    assert "NON STRICT SADDLE  exit 0 (non_strict_saddle passes --require critical)" in text
