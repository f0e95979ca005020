"""The JSON Schemas shipped in dlcert/schemas: every machine report validates against its own."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dlcert.cli import app
from dlcert.schemas import CONTRACTS, SchemaName, load_schema, schema_name

jsonschema = pytest.importorskip("jsonschema")
referencing = pytest.importorskip("referencing")

SAMPLES = ("global_full_rank", "global_bottleneck", "global_float32_rows", "strict_saddle",
           "non_strict_saddle", "not_critical")


def validator(name: SchemaName | str) -> Any:
    resources = [(load_schema(n)["$id"], referencing.Resource.from_contents(load_schema(n)))
                 for n in SchemaName]
    registry = referencing.Registry().with_resources(resources)
    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)


def assert_valid(report: dict[str, Any]) -> None:
    """Validate a report against the schema its ``schema`` field names."""
    errors = sorted(validator(schema_name(report["schema"])).iter_errors(report), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize("name", list(SchemaName))
def test_schemas_are_valid_and_named(name: SchemaName) -> None:
    schema = load_schema(name)
    jsonschema.validators.validator_for(schema).check_schema(schema)
    assert schema["title"] == CONTRACTS[name]
    assert schema["properties"]["schema"] == {"const": CONTRACTS[name]}


@pytest.mark.parametrize("name", list(SchemaName))
def test_dlcert_schema_prints_the_shipped_file(runner: CliRunner, name: SchemaName) -> None:
    res = runner.invoke(app, ["schema", name.value])
    assert res.exit_code == 0 and json.loads(res.stdout) == load_schema(name)
    shipped = Path(__file__).resolve().parent.parent / "dlcert" / "schemas" / f"{name.value}.json"
    assert json.loads(shipped.read_text()) == load_schema(name)


@pytest.mark.parametrize("sample", SAMPLES)
def test_check_reports_validate(runner: CliRunner, samples_dir: Path, sample: str) -> None:
    for fmt in ("json", "yaml"):
        res = runner.invoke(app, ["check", str(samples_dir / f"{sample}.npz"), "-f", fmt])
        import yaml

        report = json.loads(res.stdout) if fmt == "json" else yaml.safe_load(res.stdout)
        assert report["schema"] == "dlcert.check/1"
        assert_valid(report)


def test_inconclusive_report_validates(runner: CliRunner, tmp_path: Path) -> None:
    from test_gate import imprecise_bf16

    model, data = imprecise_bf16(tmp_path)
    report = json.loads(runner.invoke(app, ["check", str(model), "--data", str(data), "-f", "json"]).stdout)
    assert report["verdict"] == "inconclusive"
    assert_valid(report)


def test_batch_report_with_an_error_validates(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"junk")
    files = [str(samples_dir / f"{s}.npz") for s in SAMPLES] + [str(bad)]
    for require in ("global", "critical", "decided", "any"):
        res = runner.invoke(app, ["check", *files, "-f", "json", "--require", require])
        report = json.loads(res.stdout)
        assert report["schema"] == "dlcert.batch/1" and report["checks"][-1]["status"] == "error"
        assert_valid(report)


def test_landscape_reports_validate(runner: CliRunner, samples_dir: Path) -> None:
    data = str(samples_dir / "strict_saddle.npz")
    for extra in ([], ["--trials", "2"], ["--rows", "0"]):
        res = runner.invoke(app, ["landscape", data, "--widths", "4,3,3", "-f", "json", *extra])
        assert res.exit_code == 0, res.stderr
        assert_valid(json.loads(res.stdout))
    one_layer = json.loads(runner.invoke(app, ["landscape", data, "--widths", "4,3", "-f", "json"]).stdout)
    assert_valid(one_layer)


def test_recheck_reports_validate(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    point = str(samples_dir / "strict_saddle.npz")
    w = tmp_path / "w.npz"
    runner.invoke(app, ["check", point, "--witness", str(w)])
    confirmed = json.loads(runner.invoke(app, ["recheck", str(w), "--against", point, "-f", "json"]).stdout)
    assert confirmed["confirmed"] is True
    assert_valid(confirmed)
    # the point against itself: no decrease, not confirmed
    same = json.loads(runner.invoke(app, ["recheck", point, "--against", point, "-f", "json"]).stdout)
    assert same["confirmed"] is False and same["reasons"]
    assert_valid(same)


# --- the check schema accepts the contract's announced growth and refuses what breaks it -------


@pytest.fixture(scope="module")
def strict_report(samples_dir_module: Path) -> dict[str, Any]:
    res = CliRunner().invoke(app, ["check", str(samples_dir_module / "strict_saddle.npz"), "-f", "json"])
    out: dict[str, Any] = json.loads(res.stdout)
    return out


@pytest.fixture(scope="module")
def samples_dir_module() -> Path:
    return Path(__file__).resolve().parent.parent / "samples"


def test_check_schema_accepts_reason_objects_and_new_fields(strict_report: dict[str, Any]) -> None:
    r = copy.deepcopy(strict_report)
    r["reasons"] = [{"code": "rank_ambiguous", "message": "a rank is within a factor 10 of its cutoff"},
                    "a plain note"]
    r["tolerances"] = {"gtol": 1e-7, "ftol": 1e-11, "sources": {"gtol": "default"}}
    r["hessian"]["min_eigenvalue_error_bound"] = 1e-12
    r["critical_value"] = {"value": 1.0, "index_set": [2], "distance": 0.0}
    assert_valid(r)


@pytest.mark.parametrize(
    "breakage",
    [
        lambda r: r.pop("verdict"),
        lambda r: r.update(verdict="saddle"),
        lambda r: r.update(schema="dlcert.check/2"),
        lambda r: r.update(reasons=[{"message": "no code"}]),
        lambda r: r.update(reasons=[3]),
        lambda r: r["hessian"].update(method="magic"),
        lambda r: r["witness"].update(order=1),
        lambda r: r.update(widths=[4]),
        lambda r: r.update(loss="0.5"),
        lambda r: r["channel"].update(dead_end="sideways"),
        lambda r: r["channel"].update(missing=[{"index": 0}]),
    ],
)
def test_check_schema_refuses_broken_reports(strict_report: dict[str, Any], breakage: Any) -> None:
    r = copy.deepcopy(strict_report)
    breakage(r)
    assert list(validator(SchemaName.CHECK).iter_errors(r)), "a broken report validated"


def test_batch_schema_ties_status_to_check_and_error(runner: CliRunner, samples_dir: Path) -> None:
    files = [str(samples_dir / "strict_saddle.npz"), str(samples_dir / "not_critical.npz")]
    report = json.loads(runner.invoke(app, ["check", *files, "-f", "json"]).stdout)
    assert_valid(report)
    broken = copy.deepcopy(report)
    broken["checks"][0]["status"] = "error"  # an error row must not carry a check
    assert list(validator(SchemaName.BATCH).iter_errors(broken))
    broken = copy.deepcopy(report)
    broken["checks"][0]["check"]["verdict"] = "nope"  # the embedded check is validated too
    assert list(validator(SchemaName.BATCH).iter_errors(broken))


def test_the_suite_wide_hook_validates_cli_reports(runner: CliRunner, samples_dir: Path) -> None:
    """conftest wraps CliRunner.invoke: a report that breaks its schema fails whichever test made it."""
    from conftest import validate_report

    res = runner.invoke(app, ["check", str(samples_dir / "strict_saddle.npz"), "-f", "json"])
    validate_report(res.stdout)  # a real report passes
    broken = json.loads(res.stdout)
    broken["verdict"] = "maybe"
    with pytest.raises(AssertionError, match=r"dlcert\.check/1 report does not match its schema"):
        validate_report(json.dumps(broken))
    validate_report("not json at all")  # anything else is left alone
    validate_report('{"schema": "someone.else/1"}')
