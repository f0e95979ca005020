"""The ``dlcert`` command line: parse, call the library, render, write, exit.

Exit codes (SPEC §7): 0 certified global minimum (success for commands without a verdict),
3 saddle (strict or not), 4 not a critical point, 5 inconclusive, 2 usage or input error,
1 internal error (a bug). stdout carries only the report; errors go to stderr as one line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

from dlcert.batch import CheckOptions, Requirement, run_batch, specs_for
from dlcert.certificate import Certificate, ExitCode
from dlcert.errors import DlcertError, InputError
from dlcert.hessian import DEFAULT_TIME_BUDGET, DENSE_LIMIT
from dlcert.io import (
    Layout,
    load_problem,
    read_witness,
    save_statistics,
    save_weights,
)
from dlcert.junit import write_junit
from dlcert.landscape import Landscape, balanced_optimum, map_landscape
from dlcert.manifest import input_paths, load_landscape_input, parse_widths
from dlcert.recheck import WitnessCheck
from dlcert.recheck import recheck as recheck_witness
from dlcert.render import Format, renderer_for
from dlcert.resources import guard_landscape
from dlcert.statistics import Statistics
from dlcert.streaming import stream_statistics
from dlcert.trials import run_trials
from dlcert.writer import check_output

EXIT_CODES_HELP = (
    "Exit codes: 0 certified global minimum / success, 3 saddle, 4 not critical, "
    "5 inconclusive, 2 usage or input error, 1 internal error."
)
BATCH_HELP = (
    "With several WEIGHTS: one summary table (JSON: schema dlcert.batch/1) and the most severe "
    "exit code, in the order 1 > 2 > 4 > 3 > 5 > 0. --require critical|any lets saddles "
    "(critical) or every verdict (any) exit 0; input and internal errors always fail."
)

app = typer.Typer(
    name="dlcert",
    help="Certify critical points of deep linear neural networks. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


@app.callback()
def _root() -> None:
    """Certify critical points of deep linear neural networks."""

FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
LayoutOpt = Annotated[
    Layout | None,
    typer.Option(help="Data layout: columns = (d, m), rows = (m, d). Inferred when omitted."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")]


def fail(message: str, code: ExitCode) -> typer.Exit:
    """Write one line to stderr and return the exit to raise."""
    sys.stderr.write(f"dlcert: {message}\n")
    return typer.Exit(int(code))


def run_guarded(debug: bool, body: Callable[[], T], source: object = None) -> T:
    """Run ``body``; input errors -> exit 2, anything unexpected -> exit 1 (a bug).

    ``source`` (the command's main input) names the file when memory runs out.
    """
    try:
        return body()
    except DlcertError as exc:
        raise fail(f"error: {' '.join(str(exc).split())}", ExitCode.INPUT_ERROR) from None
    except MemoryError:
        where = f"{source}: " if source is not None else ""
        raise fail(f"error: {where}out of memory for this problem", ExitCode.INPUT_ERROR) from None
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except Exception as exc:
        if debug:
            raise
        raise fail(
            f"internal error (a bug in dlcert): {type(exc).__name__}: {' '.join(str(exc).split())}"
            " -- please report it, with the output of --debug",
            ExitCode.INTERNAL_ERROR,
        ) from None


def emit(result: object, fmt: Format) -> None:
    """Write a rendered result to stdout (colour only for a text report on a terminal)."""
    color = fmt is Format.TEXT and sys.stdout.isatty() and "NO_COLOR" not in os.environ
    width = 100
    if color:
        width = max(80, min(140, os.get_terminal_size().columns))
    sys.stdout.write(renderer_for(fmt, color=color, width=width).render(result))
    sys.stdout.flush()


RequireOpt = Annotated[
    Requirement,
    typer.Option("--require", help="What each check must reach to pass: global (global minimum), "
                 "critical (any critical point, saddles included), any (only errors fail)."),
]


@app.command(epilog=EXIT_CODES_HELP + " " + BATCH_HELP)
def check(
    weights: Annotated[list[Path], typer.Argument(
        metavar="WEIGHTS", help="Weights: one or more .npz with W1..WN (and X, Y or statistics), YAML manifests, or .safetensors / PyTorch state_dict files (.pt, .pth, .bin; data then from --data).")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Data .npz: X and Y, or Sxx, Syx, syy, m.")] = None,
    fmt: FormatOpt = Format.TEXT,
    gtol: Annotated[float | None, typer.Option(help="Relative gradient tolerance (default from input precision).")] = None,
    ftol: Annotated[float | None, typer.Option(help="Relative gap tolerance (default from input precision).")] = None,
    witness: Annotated[Path | None, typer.Option("--witness", help="Save the escape witness W' here (.npz).")] = None,
    layout: LayoutOpt = None,
    eigs: Annotated[int, typer.Option(min=0, help="Also report this many smallest Hessian eigenvalues.")] = 0,
    time_budget: Annotated[float, typer.Option(min=0.0, help="Seconds for the iterative eigen-solver.")] = DEFAULT_TIME_BUDGET,
    require: RequireOpt = Requirement.GLOBAL,
    junit_xml: Annotated[Path | None, typer.Option("--junit-xml", help="Also write a JUnit XML report here.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Certify points: global minimum, strict or non-strict saddle, or not critical."""
    options = run_guarded(debug, lambda: CheckOptions(gtol, ftol, layout, eigs, time_budget))
    if witness is not None and len(weights) > 1:
        raise fail("error: --witness takes a single WEIGHTS file", ExitCode.INPUT_ERROR)
    inputs = input_paths([*weights, data])
    run_guarded(debug, lambda: _check_outputs(inputs, witness=witness, junit_xml=junit_xml))
    batch = run_batch(specs_for(weights, data, options), require, catch_internal=not debug)
    if junit_xml is not None:
        run_guarded(debug, lambda: write_junit(junit_xml, batch, inputs=inputs))
    if len(batch.checks) > 1:
        for outcome in batch.checks:
            if outcome.error is not None:
                sys.stderr.write(f"dlcert: error: {outcome.error.message}\n")
        emit(batch, fmt)
        raise typer.Exit(int(batch.exit_code))
    outcome = batch.checks[0]
    if outcome.certificate is None:
        raise fail(f"error: {outcome.error.message if outcome.error else 'no result'}", outcome.exit_code)
    cert = outcome.certificate
    if witness is not None:
        run_guarded(debug, lambda: _save_witness(witness, cert, weights[0], inputs))
    emit(cert, fmt)
    raise typer.Exit(int(outcome.exit_code))


def _check_outputs(inputs: list[Path], *, witness: Path | None, junit_xml: Path | None) -> None:
    for path, what in ((witness, "the witness"), (junit_xml, "the JUnit report")):
        if path is not None:
            check_output(path, inputs, what)


def _save_witness(path: Path, cert: Certificate, source: Path, inputs: list[Path]) -> None:
    if cert.witness is None:
        sys.stderr.write(f"dlcert: note: no witness saved to {path}: the verdict is {cert.verdict.value}\n")
        return
    save_weights(path, cert.witness.point, {
        "kind": cert.witness.kind, "order": cert.witness.order,
        "radius": cert.witness.radius, "loss_decrease": cert.witness.loss_decrease,
        "rounding_bound": cert.witness.rounding_bound, "loss": cert.loss,
        "source": str(source),
    }, inputs=inputs, what="the witness")


@contextmanager
def stderr_progress(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (only on a terminal); yields a ``(done, total)`` callback."""
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command(epilog=EXIT_CODES_HELP)
def landscape(
    data: Annotated[Path, typer.Argument(
        help="Data: .npz with X, Y or Sxx, Syx, syy, m (e.g. from dlcert stats), or a YAML manifest.")],
    widths: Annotated[str | None, typer.Option(
        help="Architecture d0,d1,...,dN (d0 = dx, dN = dy); may come from the manifest.")] = None,
    rows: Annotated[int, typer.Option(min=0, help="How many of the lowest critical values to list.")] = 10,
    save_optimum: Annotated[Path | None, typer.Option(
        "--save-optimum", help="Save a balanced global minimiser W1..WN here (.npz); "
        "`dlcert check OUT.npz --data DATA` certifies it.")] = None,
    trials: Annotated[int, typer.Option(min=0, help="Train from this many random starts (L-BFGS-B) "
                                        "and certify each end point.")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the random starts (>= 0).")] = 0,
    layout: LayoutOpt = None,
    fmt: FormatOpt = Format.TEXT,
    debug: DebugOpt = False,
) -> None:
    """Map the landscape from data and widths: L*, L_ols, s_i, the ladder of critical values."""

    def body() -> Landscape:
        if seed < 0:
            raise InputError(f"--seed must be >= 0 (a seed of the random starts), got {seed}")
        inputs = input_paths([data])
        if save_optimum is not None:
            check_output(save_optimum, inputs, "the optimum")
        inp = load_landscape_input(data, parse_widths(widths) if widths else None, layout)
        guard_landscape(inp.widths, str(data), trials=trials, save_optimum=save_optimum is not None,
                        dense_limit=DENSE_LIMIT)
        result = map_landscape(inp.stats, inp.widths, rows=rows, gtol=inp.gtol, ftol=inp.ftol)
        if save_optimum is not None:
            save_weights(save_optimum, balanced_optimum(inp.stats, inp.widths), {
                "kind": "balanced_global_minimiser", "optimal_loss": result.optimal_loss,
                "source": str(data)}, inputs=inputs, what="the optimum")
        if trials:
            with stderr_progress(f"{trials} random starts") as tick:
                summary = run_trials(inp.stats, inp.widths, trials, seed, progress=tick,
                                     gtol=inp.gtol, ftol=inp.ftol)
            result = replace(result, trials=summary)
        return result

    result = run_guarded(debug, body, data)
    emit(result, fmt)
    raise typer.Exit(int(ExitCode.OK))


@app.command("stats", epilog=EXIT_CODES_HELP)
def stats_command(
    data: Annotated[list[Path], typer.Argument(
        help="Data files, summed: .npz (X, Y or statistics) and/or .npy pairs X.npy Y.npy "
        "(streamed in chunks, never loaded whole).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Statistics file to write (.npz).")],
    chunk_size: Annotated[int | None, typer.Option(
        min=1, help="Samples per chunk (default: about 32 MB of float64 per chunk).")] = None,
    layout: LayoutOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Compute Sxx, Syx, syy, m in one streaming pass; check and landscape accept the file."""

    def body() -> Statistics:
        check_output(output, data, "the statistics")
        with stderr_progress("reading") as tick:
            result = stream_statistics(data, layout=layout, chunk_size=chunk_size, progress=tick)
        save_statistics(output, result, inputs=data)
        return result

    result = run_guarded(debug, body, " + ".join(map(str, data)))
    sys.stdout.write(f"wrote {output}: dx = {result.dx}, dy = {result.dy}, m = {result.m}\n")
    raise typer.Exit(int(ExitCode.OK))


@app.command(epilog="Exit codes: 0 the witness is confirmed, 5 it is not, 2 usage or input error, "
             "1 internal error.")
def recheck(
    witness: Annotated[Path, typer.Argument(help="Witness W' saved by `dlcert check --witness` (.npz with W1..WN).")],
    against: Annotated[Path, typer.Option("--against", help="The point W the witness escapes from (.npz, with its data unless --data).")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Data .npz: X and Y, or Sxx, Syx, syy, m.")] = None,
    layout: LayoutOpt = None,
    fmt: FormatOpt = Format.TEXT,
    debug: DebugOpt = False,
) -> None:
    """Re-check a saved witness: L(W') < L(W) beyond rounding, within the claimed radius."""

    def body() -> WitnessCheck:
        problem = load_problem(against, data, layout)
        saved = read_witness(witness)
        return recheck_witness(
            problem.weights, saved.weights, problem.stats,
            claimed_radius=saved.radius, order=saved.order,
        )

    result = run_guarded(debug, body, witness)
    emit(result, fmt)
    raise typer.Exit(int(ExitCode.OK if result.confirmed else ExitCode.INCONCLUSIVE))


def main() -> None:
    """Console-script entry point."""
    app()
