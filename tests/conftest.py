"""Shared fixtures: random data, statistics, and paths to the sample cases."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlcert.statistics import Statistics

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def small_problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Statistics]:
    X = rng.standard_normal((4, 30))
    Y = rng.standard_normal((3, 4)) @ X + 0.3 * rng.standard_normal((3, 30))
    return X, Y, Statistics.from_data(X, Y)


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES


# --- every JSON report a test produces through the CLI validates against its shipped schema ----

@functools.cache
def _schema_validators() -> dict[str, Any] | None:
    try:
        import jsonschema
        import referencing
    except ImportError:  # jsonschema is a test extra; without it only tests/test_schemas.py skips
        return None
    from dlcert.schemas import CONTRACTS, load_schema

    schemas = {name: load_schema(name) for name in CONTRACTS}
    registry = referencing.Registry().with_resources(
        [(s["$id"], referencing.Resource.from_contents(s)) for s in schemas.values()])
    out = {}
    for name, schema in schemas.items():
        cls = jsonschema.validators.validator_for(schema)
        out[CONTRACTS[name]] = cls(schema, registry=registry)
    return out


def validate_report(text: str) -> None:
    """If ``text`` is a dlcert JSON report, assert it matches the schema its ``schema`` names."""
    validators = _schema_validators()
    if not validators or not text.lstrip().startswith("{"):
        return
    try:
        report = json.loads(text)
    except ValueError:
        return
    if isinstance(report, dict) and report.get("schema") in validators:
        errors = list(validators[report["schema"]].iter_errors(report))
        assert not errors, f"{report['schema']} report does not match its schema: " + "; ".join(
            f"{list(e.absolute_path)}: {e.message}" for e in errors[:3])


@pytest.fixture(autouse=True)
def _json_reports_match_their_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    """Wrap the test runner (not dlcert): every CliRunner stdout that is a report is validated."""
    from typer.testing import CliRunner

    original = CliRunner.invoke

    def invoke(self: CliRunner, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        validate_report(result.stdout)
        return result

    monkeypatch.setattr(CliRunner, "invoke", invoke)
