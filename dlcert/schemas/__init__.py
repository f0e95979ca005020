"""JSON Schemas (draft 2020-12) of dlcert's four machine contracts, shipped with the package.

``check.json`` (``dlcert.check/1``), ``batch.json`` (``dlcert.batch/1``, whose ``checks[].check``
refers to the check schema by its ``$id``), ``landscape.json`` (``dlcert.landscape/1``) and
``recheck.json`` (``dlcert.recheck/1``); ``check-convex.json`` (``dlcert.check-convex/1``,
``check --loss``: docs/losses.md) and ``landscape-convex.json`` (``dlcert.landscape-convex/1``,
``landscape --loss``). ``dlcert schema NAME`` prints one. The check, landscape
and recheck schemas require the documented fields and allow new ones (contracts grow by adding);
a validator (e.g. the ``jsonschema`` package) is not a dependency of dlcert.
"""

from __future__ import annotations

import json
from enum import StrEnum
from importlib import resources
from typing import Any


class SchemaName(StrEnum):
    """The machine contracts, by the name of their schema file."""

    CHECK = "check"
    BATCH = "batch"
    LANDSCAPE = "landscape"
    RECHECK = "recheck"
    CHECK_CONVEX = "check-convex"
    LANDSCAPE_CONVEX = "landscape-convex"


#: The ``schema`` field of each contract.
CONTRACTS: dict[SchemaName, str] = {
    SchemaName.CHECK: "dlcert.check/1",
    SchemaName.BATCH: "dlcert.batch/1",
    SchemaName.LANDSCAPE: "dlcert.landscape/1",
    SchemaName.RECHECK: "dlcert.recheck/1",
    SchemaName.CHECK_CONVEX: "dlcert.check-convex/1",
    SchemaName.LANDSCAPE_CONVEX: "dlcert.landscape-convex/1",
}


def schema_text(name: SchemaName | str) -> str:
    """The schema file's text (``name``: ``check`` or ``dlcert.check/1``, ...)."""
    return resources.files(__name__).joinpath(f"{schema_name(name).value}.json").read_text("utf-8")


def load_schema(name: SchemaName | str) -> dict[str, Any]:
    """The schema as a dict."""
    out: dict[str, Any] = json.loads(schema_text(name))
    return out


def schema_name(name: SchemaName | str) -> SchemaName:
    """``check``, ``dlcert.check/1`` (the value of a report's ``schema`` field), ... -> the name."""
    for key, contract in CONTRACTS.items():
        if name in (key, key.value, contract):
            return key
    raise KeyError(f"no schema {name!r}; known: {', '.join(CONTRACTS.values())}")
