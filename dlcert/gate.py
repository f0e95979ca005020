"""The CI gate: what a check must reach to pass (``--require``), and the exit code it gives.

A requirement passes only what dlcert has *shown*. The levels are nested, each passing
everything the one before it passes:

- ``global`` (the default): a certified global minimum;
- ``critical``: a certified critical point -- ``global_minimum``, ``strict_saddle`` or
  ``non_strict_saddle``. ``inconclusive`` is not shown to be anything and never passes;
- ``decided``: any verdict dlcert reached, ``not_critical`` included; only ``inconclusive``
  fails (for gating on the certificate being conclusive, e.g. when tuning tolerances);
- ``any``: every verdict passes; only input and internal errors fail.

A check that passes exits 0; one that fails exits with its verdict's code (SPEC §7: 3 saddle,
4 not critical, 5 inconclusive). :func:`gate_exit` is the whole mapping, and
:func:`gate_table` prints it (``--help``, ``docs/ci.md``).
"""

from __future__ import annotations

from enum import StrEnum

from dlcert.certificate import ExitCode, Verdict


class Requirement(StrEnum):
    """What a check must reach to pass (``--require``), loosest last."""

    GLOBAL = "global"
    CRITICAL = "critical"
    DECIDED = "decided"
    ANY = "any"


#: The verdicts each requirement passes (module docstring).
PASSING: dict[Requirement, frozenset[Verdict]] = {
    Requirement.GLOBAL: frozenset({Verdict.GLOBAL_MINIMUM}),
    Requirement.CRITICAL: frozenset(
        {Verdict.GLOBAL_MINIMUM, Verdict.STRICT_SADDLE, Verdict.NON_STRICT_SADDLE}
    ),
    Requirement.DECIDED: frozenset(set(Verdict) - {Verdict.INCONCLUSIVE}),
    Requirement.ANY: frozenset(Verdict),
}

#: One line per requirement, for help texts.
DESCRIPTIONS: dict[Requirement, str] = {
    Requirement.GLOBAL: "a certified global minimum",
    Requirement.CRITICAL: "a certified critical point (global minimum, strict or non-strict saddle)",
    Requirement.DECIDED: "any verdict but inconclusive (not_critical passes)",
    Requirement.ANY: "every verdict; only input and internal errors fail",
}


def passes(requirement: Requirement, verdict: Verdict) -> bool:
    """Whether ``verdict`` meets ``requirement``."""
    return verdict in PASSING[requirement]


def gate_exit(requirement: Requirement, verdict: Verdict) -> ExitCode:
    """The exit code of one check: 0 when it passes, else the verdict's code (SPEC §7)."""
    return ExitCode.OK if passes(requirement, verdict) else verdict.exit_code


def gate_table() -> list[tuple[str, list[int]]]:
    """``(requirement, [exit code per verdict in Verdict order])`` for every requirement."""
    return [(r.value, [int(gate_exit(r, v)) for v in Verdict]) for r in Requirement]


def gate_table_text() -> str:
    """The (require x verdict) -> exit table as aligned plain text (for ``--help``; verdict names
    shortened: ``global`` = ``global_minimum``, ``strict`` = ``strict_saddle``, ...)."""
    names = [v.value.replace("_minimum", "").replace("_saddle", "") for v in Verdict]
    head = ["require", *names]
    rows = [[r] + [str(c) for c in codes] for r, codes in gate_table()]
    widths = [max(len(row[i]) for row in [head, *rows]) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in [head, *rows])


def gate_table_markdown() -> str:
    """The same table in Markdown (``docs/ci.md`` holds a copy; a test keeps them equal)."""
    names = [f"`{v.value}`" for v in Verdict]
    lines = ["| `--require` | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines += [f"| `{r}` | " + " | ".join(map(str, codes)) + " |" for r, codes in gate_table()]
    return "\n".join(lines)
