"""Checking several points at once: the CI gate (``dlcert check A.npz B.npz ...``).

Each file is loaded and certified on its own; an error in one file (bad input, too large,
even a bug) becomes that file's outcome and never hides the others' results.

Requirement (``--require``), what a check must reach to *pass*, and the exit code of one check:
see :mod:`dlcert.gate` (:func:`~dlcert.gate.gate_exit` is the whole (require x verdict) table).
A passing check exits 0, a failing one with its verdict's code (3 saddle, 4 not critical,
5 inconclusive); an input or resource error is 2, an internal error 1. With the default
``--require global`` this is exactly the verdict's exit code of SPEC §7.

Exit code of a batch: the most severe of its checks' codes, in the order of
:data:`SEVERITY` (most severe first): 1 internal error > 2 input error > 4 not critical >
3 saddle > 5 inconclusive > 0. A bug or a bad input outranks any verdict (the gate itself is
broken or misfed); among verdicts, a point that is not even critical is furthest from a
minimum, a saddle is a definite failure, and ``inconclusive`` is a failure to decide.

JSON/YAML contract ``dlcert.batch/1`` (see :meth:`BatchResult.to_dict`)::

    {"schema": "dlcert.batch/1", "require": "global", "exit_code": 3,
     "severity_order": [1, 2, 4, 3, 5, 0],
     "summary": {"checks": 3, "passed": 1, "failed": 1, "errors": 1},
     "checks": [
       {"file": "a.npz", "data": null, "status": "passed", "exit_code": 0,
        "verdict": "global_minimum", "relative_gap": 0.0, "relative_gradient_norm": 0.0,
        "seconds": 0.01, "check": {"schema": "dlcert.check/1", ...}, "error": null},
       {"file": "b.npz", "data": null, "status": "error", "exit_code": 2, "verdict": null,
        "relative_gap": null, "relative_gradient_norm": null, "seconds": 0.0, "check": null,
        "error": {"kind": "input_error", "message": "b.npz: ..."}}]}

``status`` is ``passed``, ``failed`` (a verdict that does not meet the requirement) or
``error``; ``error.kind`` is ``input_error``, ``resource_error`` or ``internal_error``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dlcert.certificate import Certificate, ExitCode, to_builtin
from dlcert.certification import certify
from dlcert.errors import DlcertError, InputError, ResourceError
from dlcert.gate import Requirement, gate_exit, passes
from dlcert.hessian import DEFAULT_TIME_BUDGET, DENSE_LIMIT
from dlcert.io import Layout, Problem
from dlcert.manifest import (
    Manifest,
    is_manifest,
    load_check_input,
    manifest_problem,
    read_check_list,
)
from dlcert.products import widths_of
from dlcert.resources import guard_certify, guard_files

BATCH_SCHEMA = "dlcert.batch/1"

#: Exit codes from most to least severe; a batch exits with the first one any check has.
SEVERITY: tuple[ExitCode, ...] = (
    ExitCode.INTERNAL_ERROR,
    ExitCode.INPUT_ERROR,
    ExitCode.NOT_CRITICAL,
    ExitCode.SADDLE,
    ExitCode.INCONCLUSIVE,
    ExitCode.OK,
)


def meets(cert: Certificate, requirement: Requirement) -> bool:
    """Whether a certificate passes the gate under ``requirement``."""
    return passes(requirement, cert.verdict)


def most_severe(codes: Sequence[ExitCode]) -> ExitCode:
    """The most severe exit code of ``codes`` (:data:`SEVERITY`); ``OK`` for none."""
    present = set(codes)
    return next((c for c in SEVERITY if c in present), ExitCode.OK)


@dataclass(frozen=True)
class CheckOptions:
    """Options shared by every check of a batch (validated on construction).

    gtol, ftol : relative tolerances (``None``: derived from the input precision).
    layout : data layout (``None``: inferred).
    n_extremes : how many smallest Hessian eigenvalues to report.
    time_budget : seconds for each whole check (searches and eigen-solver; dlcert.budget).
    dense_limit : parameter count up to which the Hessian is formed densely.
    """

    gtol: float | None = None
    ftol: float | None = None
    layout: Layout | None = None
    n_extremes: int = 0
    time_budget: float = DEFAULT_TIME_BUDGET
    dense_limit: int = DENSE_LIMIT

    def __post_init__(self) -> None:
        for name, value in (("--gtol", self.gtol), ("--ftol", self.ftol)):
            if value is not None and not 0 < value < 1:
                raise InputError(f"{name} must be in (0, 1), got {value}")


@dataclass(frozen=True)
class CheckError:
    """Why a check produced no certificate.

    kind : ``input_error``, ``resource_error`` or ``internal_error``.
    message : one line, naming the file.
    """

    kind: str
    message: str

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.INTERNAL_ERROR if self.kind == "internal_error" else ExitCode.INPUT_ERROR


@dataclass(frozen=True)
class CheckOutcome:
    """One check of a batch: a certificate or an error, judged against the requirement.

    file, data : the weights file and the ``--data`` file (``None``: data in the weights file).
    certificate : the result, ``None`` on error; error : why there is none.
    requirement : what the check had to reach; seconds : wall time of load and certification.
    source : the file a CI annotation points at (the weights file, even for an entry of a
    manifest's ``checks:``; the manifest for inline layers); ``None``: ``file``.
    """

    file: str
    data: str | None
    certificate: Certificate | None
    error: CheckError | None
    requirement: Requirement
    seconds: float
    source: str | None = None

    @property
    def passed(self) -> bool:
        return self.certificate is not None and meets(self.certificate, self.requirement)

    @property
    def status(self) -> str:
        if self.certificate is None:
            return "error"
        return "passed" if self.passed else "failed"

    @property
    def exit_code(self) -> ExitCode:
        """0 when passed, the verdict's code when failed, 2 or 1 on error."""
        if self.error is not None or self.certificate is None:
            return self.error.exit_code if self.error is not None else ExitCode.INTERNAL_ERROR
        return gate_exit(self.requirement, self.certificate.verdict)

    def to_dict(self) -> dict[str, Any]:
        c = self.certificate
        return {
            "file": self.file,
            "data": self.data,
            "status": self.status,
            "exit_code": int(self.exit_code),
            "verdict": c.verdict.value if c is not None else None,
            "relative_gap": to_builtin(c.relative_gap) if c is not None else None,
            "relative_gradient_norm": to_builtin(c.relative_gradient_norm) if c is not None else None,
            "seconds": round(self.seconds, 6),
            "check": c.to_dict() if c is not None else None,
            "error": to_builtin(self.error),
        }


@dataclass(frozen=True)
class BatchResult:
    """The outcomes of several checks, in the order the files were given."""

    checks: list[CheckOutcome]
    requirement: Requirement

    @property
    def exit_code(self) -> ExitCode:
        return most_severe([c.exit_code for c in self.checks])

    @property
    def counts(self) -> dict[str, int]:
        statuses = [c.status for c in self.checks]
        return {
            "checks": len(statuses),
            "passed": statuses.count("passed"),
            "failed": statuses.count("failed"),
            "errors": statuses.count("error"),
        }

    def to_dict(self) -> dict[str, Any]:
        """The ``dlcert.batch/1`` contract (module docstring)."""
        return {
            "schema": BATCH_SCHEMA,
            "require": self.requirement.value,
            "exit_code": int(self.exit_code),
            "severity_order": [int(c) for c in SEVERITY],
            "summary": self.counts,
            "checks": [c.to_dict() for c in self.checks],
        }


def check_point(
    weights: Path, data: Path | None, options: CheckOptions, entry: Manifest | None = None
) -> tuple[Problem, Certificate]:
    """Load (an ``.npz``, a YAML manifest, or one ``entry`` of a manifest's ``checks:``) and
    certify one point, behind the resource guard; returns the loaded problem and its certificate.

    Options given explicitly override a manifest's tolerances. Raises :class:`DlcertError`.
    """
    guard_files([weights, data])
    if entry is not None:
        problem = manifest_problem(entry, data, options.layout)
        gtol = options.gtol if options.gtol is not None else entry.gtol
        ftol = options.ftol if options.ftol is not None else entry.ftol
    else:
        problem, gtol, ftol = load_check_input(weights, data, options.layout, options.gtol, options.ftol)
    guard_certify(widths_of(problem.weights), str(weights), dense_limit=options.dense_limit,
                  n_extremes=options.n_extremes)
    try:
        cert = certify(problem.weights, problem.stats, gtol=gtol, ftol=ftol,
                       weights_eps=problem.weights_eps, n_extremes=options.n_extremes,
                       time_budget=options.time_budget, dense_limit=options.dense_limit)
    except InputError as exc:  # the library's messages name no file: say which one
        message = str(exc)
        raise InputError(message if message.startswith(str(weights)) else f"{weights}: {message}") from None
    return problem, cert


def check_file(
    weights: Path, data: Path | None, options: CheckOptions, entry: Manifest | None = None
) -> Certificate:
    """:func:`check_point` without the problem."""
    return check_point(weights, data, options, entry)[1]


def shown(path: Path | str) -> str:
    """A path as reports show it: relative to the working directory when it lies below it."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.relative_to(Path.cwd()))
        except ValueError:
            return str(p)
    return str(p)


def one_line(text: object) -> str:
    return " ".join(str(text).split())


@dataclass(frozen=True)
class CheckSpec:
    """One check to run: a weights file, its data (``None``: inside the weights file), options."""

    weights: Path
    data: Path | None = None
    options: CheckOptions = CheckOptions()
    entry: Manifest | None = None  # one entry of a manifest's checks: list
    label: str | None = None  # the name shown in reports (default: the weights path)

    @property
    def source(self) -> str:
        """The file a report or annotation points at: the weights file when there is one."""
        if self.entry is not None:
            return shown(self.entry.weights) if self.entry.weights is not None else str(self.weights)
        return str(self.weights)

    @property
    def data_shown(self) -> str | None:
        """The data file as far as it is known before loading (``--data``, else the entry's)."""
        if self.data is not None:
            return shown(self.data)
        if self.entry is not None and self.entry.data_path is not None:
            return shown(self.entry.data_path)
        return None


#: Called after each check with its spec, the loaded problem (``None`` on error) and the outcome.
AfterCheck = Callable[["CheckSpec", "Problem | None", "CheckOutcome"], None]


def run_check(
    spec: CheckSpec,
    requirement: Requirement = Requirement.GLOBAL,
    *,
    catch_internal: bool = True,
    after: AfterCheck | None = None,
) -> CheckOutcome:
    """Check one file; every failure becomes the outcome's :class:`CheckError`.

    ``catch_internal=False`` lets unexpected exceptions (bugs) propagate (``--debug``).
    ``after`` sees the loaded problem while it is still in memory (e.g. for ``--plot``).
    """
    weights, data = Path(spec.weights), spec.data
    t0 = time.perf_counter()
    cert: Certificate | None = None
    error: CheckError | None = None
    problem: Problem | None = None
    try:
        problem, cert = check_point(weights, data, spec.options, spec.entry)
    except ResourceError as exc:
        error = CheckError("resource_error", one_line(exc))
    except DlcertError as exc:
        error = CheckError("input_error", one_line(exc))
    except MemoryError:
        error = CheckError("resource_error", f"{weights}: out of memory for this problem")
    except Exception as exc:
        if not catch_internal:
            raise
        error = CheckError(
            "internal_error",
            f"{weights}: internal error (a bug in dlcert): {type(exc).__name__}: {one_line(exc)}"
            " -- please report it, with the output of --debug",
        )
    outcome = CheckOutcome(
        file=spec.label or str(weights),
        data=shown(problem.data_source) if problem is not None else spec.data_shown,
        certificate=cert,
        error=error,
        requirement=requirement,
        seconds=time.perf_counter() - t0,
        source=spec.source,
    )
    if after is not None:
        after(spec, problem, outcome)
    return outcome


def run_batch(
    specs: Sequence[CheckSpec],
    requirement: Requirement = Requirement.GLOBAL,
    *,
    catch_internal: bool = True,
    after: AfterCheck | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BatchResult:
    """Run every check, in order; one check's error never stops the others.

    ``progress(done, total)`` is called before the first check and after each one.
    """
    outcomes = []
    for i, spec in enumerate(specs):
        if progress is not None:
            progress(i, len(specs))
        outcomes.append(run_check(spec, requirement, catch_internal=catch_internal, after=after))
    if progress is not None:
        progress(len(specs), len(specs))
    return BatchResult(outcomes, requirement)


def specs_for(
    weights: Sequence[Path], data: Path | None, options: CheckOptions
) -> list[CheckSpec]:
    """The checks of ``dlcert check W1.npz W2.yaml ... [--data D]``: one data file for all.

    A manifest with a ``checks:`` list gives one check per entry; a manifest that cannot be read
    gives one check, which reports why when it runs.
    """
    out: list[CheckSpec] = []
    for w in map(Path, weights):
        entries = None
        if is_manifest(w):
            try:
                entries = read_check_list(w)
            except DlcertError:
                entries = None  # reported as this file's error when the check runs
        if entries:
            out.extend(
                CheckSpec(w, data, options, entry=m, label=entry_label(w, m, i))
                for i, m in enumerate(entries, start=1)
            )
        else:
            out.append(CheckSpec(w, data, options))
    return out


def entry_label(manifest: Path, entry: Manifest, index: int) -> str:
    """How reports name entry ``index`` of a manifest's ``checks:`` list: by its weights file,
    then where it is listed -- ``run1/model.npz (gate.yaml checks[1])``; an entry of inline or
    ``.npy`` layers has no file of its own: ``gate.yaml checks[2] (layers)``."""
    where = f"{manifest} checks[{index}]"
    if entry.weights is not None:
        return f"{shown(entry.weights)} ({where})"
    return f"{where} (layers)"
