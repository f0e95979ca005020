"""Batch checks (``dlcert check A.npz B.npz ...``): outcomes, severity, --require, JSON contract."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from dlcert.batch import (
    BATCH_SCHEMA,
    SEVERITY,
    CheckOptions,
    CheckSpec,
    Requirement,
    most_severe,
    run_batch,
    run_check,
    specs_for,
)
from dlcert.certificate import ExitCode, Verdict
from dlcert.cli import app
from dlcert.errors import InputError

VERDICT_OF = {
    "global_full_rank": Verdict.GLOBAL_MINIMUM,
    "global_bottleneck": Verdict.GLOBAL_MINIMUM,
    "global_float32_rows": Verdict.GLOBAL_MINIMUM,
    "strict_saddle": Verdict.STRICT_SADDLE,
    "non_strict_saddle": Verdict.NON_STRICT_SADDLE,
    "not_critical": Verdict.NOT_CRITICAL,
}

# Exit code of one check per requirement, for each verdict (module docstring of dlcert.batch).
GATE_EXIT = {
    Requirement.GLOBAL: {
        Verdict.GLOBAL_MINIMUM: 0, Verdict.STRICT_SADDLE: 3, Verdict.NON_STRICT_SADDLE: 3,
        Verdict.NOT_CRITICAL: 4, Verdict.INCONCLUSIVE: 5,
    },
    Requirement.CRITICAL: {
        Verdict.GLOBAL_MINIMUM: 0, Verdict.STRICT_SADDLE: 0, Verdict.NON_STRICT_SADDLE: 0,
        Verdict.NOT_CRITICAL: 4, Verdict.INCONCLUSIVE: 5,
    },
    Requirement.DECIDED: {v: 0 if v is not Verdict.INCONCLUSIVE else 5 for v in Verdict},
    Requirement.ANY: {v: 0 for v in Verdict},
}


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def sample(samples_dir: Path) -> dict[str, Path]:
    return {name: samples_dir / f"{name}.npz" for name in VERDICT_OF}


@pytest.fixture
def bad_file(tmp_path: Path) -> Path:
    p = tmp_path / "broken.npz"
    p.write_bytes(b"PK\x03\x04 this is not a zip")
    return p


# --- severity -------------------------------------------------------------------------------


def test_severity_order_is_a_total_order_of_all_exit_codes() -> None:
    assert sorted(SEVERITY) == sorted(ExitCode)
    assert [int(c) for c in SEVERITY] == [1, 2, 4, 3, 5, 0]


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], 0),
        ([0, 0], 0),
        ([0, 5], 5),
        ([5, 3], 3),
        ([3, 4, 5], 4),
        ([4, 2, 0], 2),
        ([2, 1, 4], 1),
        ([3, 3], 3),
    ],
)
def test_most_severe(codes: list[int], expected: int) -> None:
    assert most_severe([ExitCode(c) for c in codes]) == expected
    assert most_severe([ExitCode(c) for c in reversed(codes)]) == expected


# --- library --------------------------------------------------------------------------------


@pytest.mark.parametrize("requirement", list(Requirement))
def test_each_sample_exit_follows_requirement(sample: dict[str, Path], requirement: Requirement) -> None:
    batch = run_batch(specs_for(list(sample.values()), None, CheckOptions()), requirement)
    assert [o.file for o in batch.checks] == [str(p) for p in sample.values()]
    for outcome, name in zip(batch.checks, sample, strict=True):
        assert outcome.certificate is not None and outcome.error is None
        verdict = outcome.certificate.verdict
        assert verdict is VERDICT_OF[name]
        assert int(outcome.exit_code) == GATE_EXIT[requirement][verdict]
        assert outcome.passed == (outcome.exit_code == 0)
        assert outcome.status == ("passed" if outcome.passed else "failed")
    assert batch.exit_code == most_severe([o.exit_code for o in batch.checks])
    expected = {Requirement.GLOBAL: 4, Requirement.CRITICAL: 4, Requirement.DECIDED: 0,
                Requirement.ANY: 0}[requirement]
    assert batch.exit_code == expected


def test_input_error_does_not_hide_other_results(sample: dict[str, Path], bad_file: Path) -> None:
    files = [sample["global_full_rank"], bad_file, sample["strict_saddle"]]
    batch = run_batch(specs_for(files, None, CheckOptions()))
    good, bad, saddle = batch.checks
    assert good.certificate is not None and good.certificate.verdict is Verdict.GLOBAL_MINIMUM
    assert saddle.certificate is not None and saddle.certificate.verdict is Verdict.STRICT_SADDLE
    assert bad.certificate is None and bad.error is not None
    assert bad.error.kind == "input_error" and bad.exit_code == ExitCode.INPUT_ERROR
    assert "broken.npz" in bad.error.message and "\n" not in bad.error.message
    assert batch.exit_code == ExitCode.INPUT_ERROR
    assert batch.counts == {"checks": 3, "passed": 1, "failed": 1, "errors": 1}


def test_internal_error_is_isolated_and_reported(
    sample: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dlcert.batch

    real = dlcert.batch.certify
    calls = []

    def flaky(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise ZeroDivisionError("simulated bug")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(dlcert.batch, "certify", flaky)
    files = [sample["global_full_rank"], sample["strict_saddle"], sample["not_critical"]]
    batch = run_batch(specs_for(files, None, CheckOptions()))
    codes = [int(o.exit_code) for o in batch.checks]
    assert codes == [0, 1, 4]
    err = batch.checks[1].error
    assert err is not None and err.kind == "internal_error"
    assert "ZeroDivisionError: simulated bug" in err.message and "please report" in err.message
    assert batch.exit_code == ExitCode.INTERNAL_ERROR
    with pytest.raises(ZeroDivisionError):
        calls.clear()
        run_batch(specs_for(files, None, CheckOptions()), catch_internal=False)


@pytest.mark.parametrize(("name", "value"), [("gtol", 0.0), ("ftol", 1.5), ("gtol", -1e-3)])
def test_options_are_validated(name: str, value: float) -> None:
    with pytest.raises(InputError, match=f"--{name} must be in"):
        CheckOptions(**{name: value})


def test_shared_data_file(tmp_path: Path, sample: dict[str, Path]) -> None:
    """Weights-only files checked against one --data file give the same verdicts."""
    arrays = dict(np.load(sample["strict_saddle"]))
    np.savez(tmp_path / "data.npz", **{k: v for k, v in arrays.items() if not k.startswith("W")})
    np.savez(tmp_path / "w.npz", **{k: v for k, v in arrays.items() if k.startswith("W")})
    outcome = run_check(CheckSpec(tmp_path / "w.npz", tmp_path / "data.npz"))
    assert outcome.certificate is not None
    assert outcome.certificate.verdict is Verdict.STRICT_SADDLE
    assert outcome.to_dict()["data"] == str(tmp_path / "data.npz")


def test_batch_dict_contract(sample: dict[str, Path], bad_file: Path) -> None:
    batch = run_batch(specs_for([sample["non_strict_saddle"], bad_file], None, CheckOptions()))
    d = json.loads(json.dumps(batch.to_dict(), allow_nan=False))
    assert d["schema"] == BATCH_SCHEMA
    assert d["require"] == "global" and d["exit_code"] == 2
    assert d["severity_order"] == [1, 2, 4, 3, 5, 0]
    assert d["summary"] == {"checks": 2, "passed": 0, "failed": 1, "errors": 1}
    keys = {"file", "data", "status", "exit_code", "verdict", "relative_gap",
            "relative_gradient_norm", "seconds", "check", "error"}
    first, second = d["checks"]
    assert set(first) == set(second) == keys
    assert first["check"]["schema"] == "dlcert.check/1"
    assert first["verdict"] == first["check"]["verdict"] == "non_strict_saddle"
    assert first["relative_gap"] == first["check"]["relative_gap"]
    assert first["status"] == "failed" and first["exit_code"] == 3 and first["error"] is None
    assert second["status"] == "error" and second["check"] is None and second["verdict"] is None
    assert second["error"]["kind"] == "input_error" and "broken.npz" in second["error"]["message"]


# --- CLI ------------------------------------------------------------------------------------


def test_cli_batch_text_table(
    runner: CliRunner, sample: dict[str, Path], bad_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(bad_file.parent)
    for p in sample.values():
        shutil.copy(p, p.name)
    files = [p.name for p in sample.values()] + [bad_file.name]
    result = runner.invoke(app, ["check", *files])
    assert result.exit_code == 2
    for name, verdict in VERDICT_OF.items():
        assert name in result.stdout
        assert verdict.value in result.stdout
    assert "broken.npz" in result.stdout and "input_error" in result.stdout
    assert "7 checks: 3 passed, 3 failed, 1 error; exit 2" in result.stdout
    # stderr: exactly one line, for the one bad file; no traceback anywhere
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("dlcert: error: ") and "broken.npz" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("require", "expected"),
    [("global", 3), ("critical", 0), ("any", 0)],
)
def test_cli_batch_of_saddles_and_minima(
    runner: CliRunner, sample: dict[str, Path], require: str, expected: int
) -> None:
    files = [str(sample[n]) for n in ("global_full_rank", "strict_saddle", "non_strict_saddle")]
    result = runner.invoke(app, ["check", *files, "--require", require, "-f", "json"])
    assert result.exit_code == expected, result.stderr
    d = json.loads(result.stdout)
    assert d["schema"] == BATCH_SCHEMA and d["exit_code"] == expected and d["require"] == require
    assert [c["verdict"] for c in d["checks"]] == ["global_minimum", "strict_saddle", "non_strict_saddle"]
    assert result.stderr == ""


@pytest.mark.parametrize(("require", "expected"), [("global", 3), ("critical", 0), ("any", 0)])
def test_cli_single_file_keeps_check_contract(
    runner: CliRunner, sample: dict[str, Path], require: str, expected: int
) -> None:
    result = runner.invoke(app, ["check", str(sample["strict_saddle"]), "-f", "json",
                                 "--require", require])
    assert result.exit_code == expected
    d = json.loads(result.stdout)
    assert d["schema"] == "dlcert.check/1" and d["verdict"] == "strict_saddle"


def test_cli_not_critical_fails_every_requirement_but_any(runner: CliRunner, sample: dict[str, Path]) -> None:
    for require, code in (("global", 4), ("critical", 4), ("any", 0)):
        result = runner.invoke(app, ["check", str(sample["not_critical"]), "--require", require])
        assert result.exit_code == code


def test_cli_batch_yaml(runner: CliRunner, sample: dict[str, Path]) -> None:
    result = runner.invoke(app, ["check", str(sample["global_full_rank"]), str(sample["global_bottleneck"]),
                                 "-f", "yaml"])
    assert result.exit_code == 0
    d = yaml.safe_load(result.stdout)
    assert d["schema"] == BATCH_SCHEMA and d["summary"]["passed"] == 2


def test_cli_same_file_twice_is_two_checks(
    runner: CliRunner, sample: dict[str, Path], tmp_path: Path
) -> None:
    copy = tmp_path / "copy.npz"
    shutil.copy(sample["strict_saddle"], copy)
    result = runner.invoke(app, ["check", str(copy), str(copy), "-f", "json"])
    assert result.exit_code == 3
    assert len(json.loads(result.stdout)["checks"]) == 2


def test_cli_witness_needs_one_file(runner: CliRunner, sample: dict[str, Path], tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", str(sample["strict_saddle"]), str(sample["global_full_rank"]),
                                 "--witness", str(tmp_path / "w.npz")])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and "--witness" in result.stderr
    assert not (tmp_path / "w.npz").exists()


def test_cli_bad_tolerance_is_one_line(runner: CliRunner, sample: dict[str, Path]) -> None:
    result = runner.invoke(app, ["check", str(sample["strict_saddle"]), str(sample["global_full_rank"]),
                                 "--gtol", "2"])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr == "dlcert: error: --gtol must be in (0, 1), got 2.0\n"


def test_cli_single_bad_file_is_one_line(runner: CliRunner, bad_file: Path) -> None:
    result = runner.invoke(app, ["check", str(bad_file)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "broken.npz" in result.stderr


def test_out_of_memory_names_the_file(samples_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15, cause 7: "out of memory for this problem" says which file (library level: the
    allocation failure is simulated where certification would allocate)."""
    import dlcert.batch as batch_module

    def exhausted(*args: object, **kwargs: object) -> None:
        raise MemoryError

    monkeypatch.setattr(batch_module, "certify", exhausted)
    outcome = run_check(CheckSpec(samples_dir / "strict_saddle.npz"))
    assert outcome.error is not None and outcome.error.kind == "resource_error"
    assert outcome.error.message.startswith(str(samples_dir / "strict_saddle.npz"))
    assert "out of memory" in outcome.error.message
