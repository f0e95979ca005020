"""The ``dlcert`` command line: parse, call the library, render, write, exit.

Exit codes (SPEC §7): 0 certified global minimum (success for commands without a verdict),
3 saddle (strict or not), 4 not a critical point, 5 inconclusive, 2 usage or input error,
1 internal error (a bug). stdout carries only the report; errors go to stderr as one line.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from dlcert.certificate import Certificate, ExitCode
from dlcert.certify import certify
from dlcert.errors import DlcertError
from dlcert.io import Layout, load_problem, save_weights
from dlcert.render import Format, renderer_for

EXIT_CODES_HELP = (
    "Exit codes: 0 certified global minimum / success, 3 saddle, 4 not critical, "
    "5 inconclusive, 2 usage or input error, 1 internal error."
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


def run_guarded(debug: bool, body: Callable[[], T]) -> T:
    """Run ``body``; input errors -> exit 2, anything unexpected -> exit 1 (a bug)."""
    try:
        return body()
    except DlcertError as exc:
        raise fail(f"error: {' '.join(str(exc).split())}", ExitCode.INPUT_ERROR) from None
    except MemoryError:
        raise fail("error: out of memory for this problem", ExitCode.INPUT_ERROR) from None
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


@app.command(epilog=EXIT_CODES_HELP)
def check(
    weights: Annotated[Path, typer.Argument(help="Weights: .npz with W1..WN (and X, Y or statistics).")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Data .npz: X and Y, or Sxx, Syx, syy, m.")] = None,
    fmt: FormatOpt = Format.TEXT,
    gtol: Annotated[float | None, typer.Option(help="Relative gradient tolerance (default from input precision).")] = None,
    ftol: Annotated[float | None, typer.Option(help="Relative gap tolerance (default from input precision).")] = None,
    witness: Annotated[Path | None, typer.Option("--witness", help="Save the escape witness W' here (.npz).")] = None,
    layout: LayoutOpt = None,
    eigs: Annotated[int, typer.Option(min=0, help="Also report this many smallest Hessian eigenvalues.")] = 0,
    time_budget: Annotated[float, typer.Option(min=0.0, help="Seconds for the iterative eigen-solver.")] = 20.0,
    debug: DebugOpt = False,
) -> None:
    """Certify one point: global minimum, strict or non-strict saddle, or not critical."""

    def body() -> Certificate:
        for name, value in (("--gtol", gtol), ("--ftol", ftol)):
            if value is not None and not 0 < value < 1:
                raise DlcertError(f"{name} must be in (0, 1), got {value}")
        problem = load_problem(weights, data, layout)
        cert = certify(problem.weights, problem.stats, gtol=gtol, ftol=ftol, eps=problem.eps,
                       n_extremes=eigs, time_budget=time_budget)
        if witness is not None and cert.witness is None:
            sys.stderr.write(f"dlcert: note: no witness saved to {witness}: the verdict is "
                             f"{cert.verdict.value}\n")
        if witness is not None and cert.witness is not None:
            save_weights(witness, cert.witness.point, {
                "kind": cert.witness.kind, "order": cert.witness.order,
                "radius": cert.witness.radius, "loss_decrease": cert.witness.loss_decrease,
                "rounding_bound": cert.witness.rounding_bound, "loss": cert.loss,
                "source": str(weights),
            })
        return cert

    cert = run_guarded(debug, body)
    emit(cert, fmt)
    raise typer.Exit(int(cert.exit_code))


def main() -> None:
    """Console-script entry point."""
    app()
