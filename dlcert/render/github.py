"""GitHub Actions renderers of a batch: workflow-command annotations and a Markdown summary.

``-f github`` prints one ``::error file=...,title=...::message`` line per check that fails its
requirement or could not run, so GitHub shows it on the run's summary page (and on the file in
a pull request); the last line is a plain summary. :class:`MarkdownSummary` is the table that
``dlcert check`` appends to ``$GITHUB_STEP_SUMMARY`` when that variable is set. Both work from
a :class:`~dlcert.batch.BatchResult` only; no I/O here.
"""

from __future__ import annotations

from dlcert.batch import SEVERITY, BatchResult, CheckOutcome
from dlcert.gate import DESCRIPTIONS


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped (GitHub's own rules)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as :func:`escape_data`, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(outcome: CheckOutcome) -> str | None:
    """The ``::error`` line of a check that fails or could not run (``None`` when it passes)."""
    if outcome.passed:
        return None
    code = int(outcome.exit_code)
    c = outcome.certificate
    if c is None:
        kind = outcome.error.kind if outcome.error is not None else "error"
        title = f"dlcert: {kind.replace('_', ' ')} (exit {code})"
        message = outcome.error.message if outcome.error is not None else "no result"
    else:
        title = f"dlcert: {c.verdict.value} (exit {code})"
        message = (
            f"{outcome.file}: {c.verdict.value} does not meet --require {outcome.requirement.value}"
            f" ({DESCRIPTIONS[outcome.requirement]}). {c.message} "
            f"[relative gap {c.relative_gap:.3e}, ftol {c.tolerances.ftol:.1e}; relative gradient "
            f"{c.relative_gradient_norm:.3e}, gtol {c.tolerances.gtol:.1e}]"
        )
    file = outcome.source or outcome.file
    return f"::error file={escape_property(file)},title={escape_property(title)}::{escape_data(message)}"


def summary_line(batch: BatchResult) -> str:
    n = batch.counts
    return (
        f"dlcert check: {n['checks']} checks, require {batch.requirement.value}: {n['passed']} passed, "
        f"{n['failed']} failed, {n['errors']} errors; exit {int(batch.exit_code)}"
    )


class GithubRenderer:
    """``-f github``: one annotation per failing check, then a plain summary line."""

    def render(self, result: BatchResult) -> str:
        lines = [a for a in map(annotation, result.checks) if a is not None]
        lines.append(summary_line(result))
        return "\n".join(lines) + "\n"


def _cell(text: object) -> str:
    """Text for a Markdown table cell: pipes escaped, no line breaks."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"<code>{_cell(text).replace('<', '&lt;').replace('>', '&gt;')}</code>"


class MarkdownSummary:
    """The Markdown appended to ``$GITHUB_STEP_SUMMARY``: a headline, a table, the errors."""

    def render(self, result: BatchResult) -> str:
        b = result
        n = b.counts
        order = " > ".join(str(int(c)) for c in SEVERITY)
        mark = "✅" if int(b.exit_code) == 0 else "❌"
        lines = [
            f"### {mark} dlcert check: exit {int(b.exit_code)}",
            "",
            f"{n['checks']} checks, `--require {b.requirement.value}` "
            f"({_cell(DESCRIPTIONS[b.requirement])}): **{n['passed']} passed, {n['failed']} failed, "
            f"{n['errors']} errors**. The exit code is the most severe of the checks' ({order}).",
            "",
            "| file | verdict | relative gap / ftol | relative gradient / gtol | exit | result |",
            "|---|---|---:|---:|---:|---|",
        ]
        for o in b.checks:
            c = o.certificate
            if c is None:
                verdict = o.error.kind if o.error is not None else "error"
                gap = grad = "-"
            else:
                verdict = c.verdict.value
                gap = f"{c.relative_gap:.1e} / {c.tolerances.ftol:.1e}"
                grad = f"{c.relative_gradient_norm:.1e} / {c.tolerances.gtol:.1e}"
            result_cell = "pass" if o.passed else ("error" if c is None else "FAIL")
            lines.append(f"| {_code(o.file)} | {verdict} | {gap} | {grad} | {int(o.exit_code)} | "
                         f"{result_cell} |")
        errors = [o for o in b.checks if o.error is not None]
        if errors:
            lines += ["", "Errors:", ""]
            lines += [f"- {_code(o.file)}: {_cell(o.error.message)}" for o in errors if o.error]
        return "\n".join(lines) + "\n\n"
