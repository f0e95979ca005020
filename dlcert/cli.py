"""The ``dlcert`` command line: parse, call the library, render, write, exit.

Exit codes: 0 certified global minimum (success for commands without a verdict),
3 saddle (strict or not), 4 not a critical point, 5 inconclusive, 2 usage or input error,
1 internal error (a bug). stdout carries only the report; errors go to stderr as one line.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from dlcert import __version__
from dlcert.batch import CheckOptions, most_severe, run_batch, specs_for
from dlcert.certificate import Certificate, ExitCode, Reason
from dlcert.checkpoints import using_key
from dlcert.ci import append_step_summary, project_defaults, write_report
from dlcert.engines import Engine, compute_statistics
from dlcert.errors import DlcertError, InputError
from dlcert.formats import format_of
from dlcert.frameworks import LINEAR_NOTE
from dlcert.gate import DESCRIPTIONS, Requirement, gate_exit, gate_table_text
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
from dlcert.manifest import input_paths, load_check_input, load_landscape_input, parse_widths
from dlcert.objective import loss
from dlcert.polishing import Polish
from dlcert.recheck import WitnessCheck
from dlcert.recheck import recheck as recheck_witness
from dlcert.render import CheckFormat, ColorMode, Format, renderer_for
from dlcert.render.github import MarkdownSummary
from dlcert.render.plots import CheckPlotter, PlotFormat, landscape_figures, pyplot, safe_stem, save_figures
from dlcert.render.report import CheckReport
from dlcert.render.text import exit_note
from dlcert.resources import guard_landscape
from dlcert.schemas import SchemaName, schema_text
from dlcert.statistics import Statistics
from dlcert.stats_merge import merge_statistics
from dlcert.trials import run_trials
from dlcert.writer import check_output

EXIT_CODES_HELP = (
    "Exit codes: 0 certified global minimum / success, 3 saddle, 4 not critical, "
    "5 inconclusive, 2 usage or input error, 1 internal error."
)
NO_VERDICT_EXIT_HELP = "Exit codes: 0 success, 2 usage or input error, 1 internal error."
BATCH_HELP = (
    "With several WEIGHTS: one summary table (JSON: schema dlcert.batch/1) and the most severe "
    "exit code, in the order 1 > 2 > 4 > 3 > 5 > 0. Exit code of one check under --require "
    "(input errors are always 2, internal errors 1):\n\n" + gate_table_text()
)

app = typer.Typer(
    name="dlcert",
    help="Certify critical points of deep linear neural networks. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

T = TypeVar("T")


def _print_version(value: bool) -> None:
    if value:
        sys.stdout.write(f"dlcert {__version__}\n")
        raise typer.Exit(int(ExitCode.OK))


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Certify critical points of deep linear neural networks.

    Defaults for options come from [tool.dlcert] in the nearest pyproject.toml (see dlcert.ci).
    """
    try:
        _, defaults = project_defaults()
    except DlcertError as exc:
        raise fail(f"error: {' '.join(str(exc).split())}", ExitCode.INPUT_ERROR) from None
    if defaults:
        ctx.default_map = {**defaults, **(ctx.default_map or {})}


FormatOpt = Annotated[Format, typer.Option("--format", "-f", help="Output format.")]
LayoutOpt = Annotated[
    Layout | None,
    typer.Option(help="Data layout: columns = (d, m), rows = (m, d). Inferred when omitted."),
]
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")]
ColorOpt = Annotated[ColorMode, typer.Option(
    "--color", help="Colour of the text report: auto (rich decides: a terminal, NO_COLOR, FORCE_COLOR), "
    "always, never.")]
QuietOpt = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No text report, notes or progress (errors, -f json|yaml|github output and "
    "the exit code stay).")]
OutputOpt = Annotated[Path | None, typer.Option(
    "--output", "-o", help="Also write the machine report (what -f json prints; YAML for a .yaml/.yml "
    "name) to this file; the -f report still goes to stdout.")]
PlotOpt = Annotated[Path | None, typer.Option(
    "--plot", help="Draw figures into this directory (needs the plot extra: pip install 'dlcert\\[plot]').")]
PlotFormatOpt = Annotated[PlotFormat, typer.Option("--plot-format", help="Image format of --plot.")]


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


def text_style(color: ColorMode) -> tuple[str | None, int]:
    """Colour system and width of the text report on stdout; rich decides under ``auto``
    (a terminal, ``NO_COLOR``, ``FORCE_COLOR``, ``TERM``), an explicit ``--color`` wins."""
    probe = Console(
        file=sys.stdout,
        force_terminal={ColorMode.AUTO: None, ColorMode.ALWAYS: True, ColorMode.NEVER: False}[color],
        no_color={ColorMode.AUTO: None, ColorMode.ALWAYS: False, ColorMode.NEVER: True}[color],
    )
    system = probe.color_system if probe.is_terminal and not probe.no_color else None
    width = max(80, min(140, probe.width)) if sys.stdout.isatty() else 100
    return system, width


def emit(result: object, fmt: Format | CheckFormat, color: ColorMode = ColorMode.AUTO,
         quiet: bool = False) -> None:
    """Write a rendered result to stdout (``quiet`` drops a text report, never machine output)."""
    if quiet and fmt == Format.TEXT:
        return
    system, width = text_style(color) if fmt == Format.TEXT else (None, 100)
    sys.stdout.write(renderer_for(fmt, width=width, color_system=system).render(result))
    sys.stdout.flush()


def write_output(path: Path, result: object) -> None:
    """``--output``: the machine report, JSON (YAML for a ``.yaml``/``.yml`` name)."""
    fmt = Format.YAML if path.suffix.lower() in (".yaml", ".yml") else Format.JSON
    write_report(path, renderer_for(fmt).render(result), "report")


def note(message: str, quiet: bool) -> None:
    """A note on stderr (not an error), silenced by ``-q``."""
    if not quiet:
        sys.stderr.write(f"dlcert: note: {message}\n")


RequireOpt = Annotated[
    Requirement,
    typer.Option("--require", help="What each check must reach to pass: "
                 + "; ".join(f"{r.value}: {d}" for r, d in DESCRIPTIONS.items()) + "."),
]


@app.command(epilog=EXIT_CODES_HELP + " " + BATCH_HELP)
def check(
    weights: Annotated[list[Path], typer.Argument(
        metavar="WEIGHTS", help="Weights: one or more .npz with W1..WN (and X, Y or statistics), YAML manifests, or .safetensors / PyTorch state_dict files (.pt, .pth, .bin; data then from --data).")],
    data: Annotated[Path | None, typer.Option("--data", "-d", help="Data .npz: X and Y, or Sxx, Syx, syy, m.")] = None,
    fmt: Annotated[CheckFormat, typer.Option("--format", "-f", help="Output format (github: workflow-command annotations, one per failing check).")] = CheckFormat.TEXT,
    gtol: Annotated[float | None, typer.Option(help="Relative gradient tolerance (default from input precision).")] = None,
    ftol: Annotated[float | None, typer.Option(help="Relative gap tolerance (default from input precision).")] = None,
    witness: Annotated[Path | None, typer.Option("--witness", help="Save the escape witness W' here (.npz).")] = None,
    layout: LayoutOpt = None,
    eigs: Annotated[int, typer.Option(min=0, help="Also report this many smallest Hessian eigenvalues.")] = 0,
    time_budget: Annotated[float, typer.Option(min=0.0, help="Seconds for the whole check: searches and eigen-solver.")] = DEFAULT_TIME_BUDGET,
    require: RequireOpt = Requirement.GLOBAL,
    junit_xml: Annotated[Path | None, typer.Option("--junit-xml", help="Also write a JUnit XML report here.")] = None,
    output: OutputOpt = None,
    color: ColorOpt = ColorMode.AUTO,
    quiet: QuietOpt = False,
    plot: PlotOpt = None,
    plot_format: PlotFormatOpt = PlotFormat.PNG,
    polish: Annotated[bool, typer.Option("--polish", help="Also polish the point (full-batch Levenberg-Marquardt on the gradient; L-BFGS if that stalls) to the nearest critical point and certify that; the stored point's verdict and exit code stay its own.")] = False,
    polish_out: Annotated[Path | None, typer.Option("--polish-out", help="Save the polished point here (.npz W1..WN; implies --polish).")] = None,
    key: Annotated[str | None, typer.Option("--key", help="Entry of a training-loop checkpoint holding the state_dict (a/b for nested); default: the only dict of tensors.")] = None,
    loss_name: Annotated[str, typer.Option("--loss", help="Loss of the end-to-end matrix: square (default; statistics suffice), logistic, cross-entropy or huber[:DELTA] (these need raw X, Y; docs/losses.md).")] = "square",
    residual: Annotated[bool, typer.Option("--residual", help="The file holds A_1..A_N of a residual network: the layers are I + A_i (square, one width); adds yun2018.cor2.3.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Certify points: global minimum, strict or non-strict saddle, or not critical.

    When GITHUB_STEP_SUMMARY is set (GitHub Actions), a Markdown summary is appended to it.
    """
    if residual or loss_name.strip().lower() != "square" or _towers(weights):
        _check_beyond(weights, data, layout, loss_name, residual, gtol, ftol, witness, fmt, output, color,
                      quiet, debug, polish or polish_out is not None or plot is not None or junit_xml is not None,
                      require)
    options = run_guarded(debug, lambda: CheckOptions(gtol, ftol, layout, eigs, time_budget))
    polish = polish or polish_out is not None
    for flag, used in (("--witness", witness is not None), ("--polish", polish)):
        if used and len(weights) > 1:
            raise fail(f"error: {flag} takes a single WEIGHTS file", ExitCode.INPUT_ERROR)
    inputs = input_paths([*weights, data])
    run_guarded(debug, lambda: _check_outputs(inputs, witness=witness, junit_xml=junit_xml, output=output,
                                              polish_out=polish_out))
    specs = specs_for(weights, data, options)
    plotter = run_guarded(debug, lambda: CheckPlotter.create(plot, plot_format, specs)) if plot else None
    with stderr_progress("certifying", quiet=quiet) as tick, using_key(key):
        batch = run_batch(specs, require, catch_internal=not debug, progress=tick,
                          after=plotter.after if plotter else None)
    if junit_xml is not None:
        run_guarded(debug, lambda: write_junit(junit_xml, batch, inputs=inputs))
    run_guarded(debug, lambda: append_step_summary(MarkdownSummary().render(batch)))
    single = batch.checks[0] if len(batch.checks) == 1 else None
    cert = single.certificate if single is not None else None
    if output is not None and single is None:
        run_guarded(debug, lambda: write_output(output, batch))
    for outcome in batch.checks:
        if outcome.error is not None:
            sys.stderr.write(f"dlcert: error: {outcome.error.message}\n")
    if fmt == CheckFormat.GITHUB:
        emit(batch, fmt)
    code = batch.exit_code
    if plotter is not None:
        code = most_severe([code, report_plots(plotter.written, plotter.errors, quiet, plotter.internal)])
    if single is None or cert is None:  # several checks, or one that could not run
        if single is None and fmt != CheckFormat.GITHUB:
            emit(batch, fmt, color, quiet)
        raise typer.Exit(int(code))
    if format_of(weights[0]) is not None:  # a state_dict / safetensors file: say it is taken as linear
        cert = replace(cert, reasons=[*cert.reasons, Reason("note.linear_chain", LINEAR_NOTE)])
    if witness is not None:
        run_guarded(debug, lambda: _save_witness(witness, cert, weights[0], inputs, quiet))
    polished = run_guarded(debug, lambda: _polish(weights[0], data, options, key, polish_out)) if polish else None
    report = CheckReport(cert, polished, exit_note=exit_note(replace(single, certificate=cert)))
    if output is not None:
        run_guarded(debug, lambda: write_output(output, report))
    if fmt != CheckFormat.GITHUB:
        emit(report, fmt, color, quiet)
    raise typer.Exit(int(code))


def _towers(weights: list[Path]) -> bool:
    from dlcert.beyond import is_towers_file

    return len(weights) == 1 and is_towers_file(weights[0])


def _check_beyond(weights: list[Path], data: Path | None, layout: Layout | None, loss_name: str,
                  residual: bool, gtol: float | None, ftol: float | None, witness: Path | None,
                  fmt: CheckFormat, output: Path | None, color: ColorMode, quiet: bool, debug: bool,
                  unsupported: bool, require: Requirement = Requirement.GLOBAL) -> None:
    """``--loss`` other than square, or ``--residual``: one file, routed to dlcert.beyond."""
    from dlcert.beyond import check_beyond

    if len(weights) > 1 or unsupported or fmt == CheckFormat.GITHUB:
        raise fail("error: --loss/--residual take a single WEIGHTS file, -f text|json|yaml, and no "
                   "--polish/--plot/--junit-xml", ExitCode.INPUT_ERROR)
    inputs = input_paths([weights[0], data])
    run_guarded(debug, lambda: _check_outputs(inputs, witness=witness, junit_xml=None, output=output))
    report = run_guarded(debug, lambda: check_beyond(weights[0], data, layout, loss_name, residual, gtol, ftol,
                                                     witness))
    if output is not None:
        run_guarded(debug, lambda: write_output(output, report))
    emit(report, fmt, color, quiet)
    raise typer.Exit(int(gate_exit(require, report.certificate.verdict)))


def report_plots(written: list[Path], errors: list[str], quiet: bool, internal: bool = False) -> ExitCode:
    """Say which figures were written (a note each) and why any were not (exit 2; 1 for a bug)."""
    for path in written:
        note(f"wrote {path} ({path.stat().st_size} bytes)", quiet)
    for message in errors:
        sys.stderr.write(f"dlcert: error: {' '.join(message.split())}\n")
    if not errors:
        return ExitCode.OK
    return ExitCode.INTERNAL_ERROR if internal else ExitCode.INPUT_ERROR


def _polish(source: Path, data: Path | None, options: CheckOptions, key: str | None, out: Path | None) -> Polish:
    """Polish the stored point (``dlcert.api.polish``) and save the polished point to ``out``."""
    from dlcert.api import Loaded
    from dlcert.api import polish as polish_point

    with using_key(key):
        problem, gtol, ftol = load_check_input(source, data, options.layout, options.gtol, options.ftol)
    result = polish_point(Loaded(problem.weights, problem.stats, problem.weights_eps, str(source)),
                          gtol=gtol, ftol=ftol, time_budget=options.time_budget)
    if out is not None:
        save_weights(out, result.point, {
            "kind": "polished_point", "method": result.method, "verdict": result.verdict.value,
            "distance": result.distance, "loss_change": result.loss_change, "source": str(source)},
            inputs=input_paths([source, data]), what="the polished point")
    return result


def _check_outputs(inputs: list[Path], *, witness: Path | None, junit_xml: Path | None,
                   output: Path | None = None, polish_out: Path | None = None) -> None:
    for path, what in ((witness, "the witness"), (junit_xml, "the JUnit report"), (output, "the report"),
                       (polish_out, "the polished point")):
        if path is not None:
            check_output(path, inputs, what)


def _save_witness(path: Path, cert: Certificate, source: Path, inputs: list[Path], quiet: bool = False) -> None:
    if cert.witness is None:
        note(f"no witness saved to {path}: the verdict is {cert.verdict.value}", quiet)
        return
    save_weights(path, cert.witness.point, {
        "kind": cert.witness.kind, "order": cert.witness.order,
        "radius": cert.witness.radius, "loss_decrease": cert.witness.loss_decrease,
        "rounding_bound": cert.witness.rounding_bound, "loss": cert.loss,
        "source": str(source),
    }, inputs=inputs, what="the witness")


@contextmanager
def stderr_progress(description: str, quiet: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr (only when stderr really is a terminal -- ``FORCE_COLOR``
    in a CI log does not count -- and never with ``-q``); yields a ``(done, total)`` callback."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    on_terminal = console.is_terminal and sys.stderr.isatty()
    with Progress(
        TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=quiet or not on_terminal,
    ) as bar:
        task = bar.add_task(description, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.command(epilog=NO_VERDICT_EXIT_HELP)
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
    output: OutputOpt = None,
    color: ColorOpt = ColorMode.AUTO,
    quiet: QuietOpt = False,
    plot: PlotOpt = None,
    plot_format: PlotFormatOpt = PlotFormat.PNG,
    loss_name: Annotated[str, typer.Option("--loss", help="Loss of the end-to-end matrix: square (default: "
                                           "the ladder) or logistic, cross-entropy, huber[:DELTA] (raw X, Y; "
                                           "--trials certified by the rules of check --loss; docs/losses.md).")] = "square",
    debug: DebugOpt = False,
) -> None:
    """Map the landscape from data and widths: L*, L_ols, s_i, the ladder of critical values.

    A manifest naming weights gives its data and its weights' widths (and --plot marks the
    point's loss on the ladder).
    """
    if loss_name.strip().lower() != "square":
        _landscape_beyond(data, widths, layout, loss_name, trials, seed, fmt, output, color, quiet, debug,
                          save_optimum is not None or plot is not None)
    written: list[Path] = []

    def body() -> Landscape:
        if plot is not None:
            pyplot()  # refuse before any work when matplotlib is missing
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
            with stderr_progress(f"{trials} random starts", quiet=quiet) as tick:
                summary = run_trials(inp.stats, inp.widths, trials, seed, progress=tick,
                                     gtol=inp.gtol, ftol=inp.ftol)
            result = replace(result, trials=summary)
        if output is not None:
            write_output(output, result)
        if plot is not None:
            point = loss(inp.weights, inp.stats) if inp.weights is not None else None
            written.extend(save_figures(landscape_figures(result, point), plot,
                                        safe_stem(Path(data).stem), plot_format))
        return result

    result = run_guarded(debug, body, data)
    if save_optimum is not None:
        note(f"wrote {save_optimum}: a balanced global minimiser W1..W{result.n_layers} "
             f"(L* = {result.optimal_loss:.10g}); `dlcert check {save_optimum} --data {data}` certifies it",
             quiet)
    report_plots(written, [], quiet)
    emit(result, fmt, color, quiet)
    raise typer.Exit(int(ExitCode.OK))


def _landscape_beyond(data: Path, widths: str | None, layout: Layout | None, loss_name: str, trials: int,
                      seed: int, fmt: Format, output: Path | None, color: ColorMode, quiet: bool, debug: bool,
                      unsupported: bool) -> None:
    """``landscape --loss`` other than square: routed to dlcert.beyond (imported here: lazy)."""
    def body() -> object:
        from dlcert.beyond import landscape_beyond

        if unsupported:
            raise InputError(f"--loss {loss_name}: --save-optimum and --plot are for the square loss")
        if seed < 0:
            raise InputError(f"--seed must be >= 0 (a seed of the random starts), got {seed}")
        if output is not None:
            check_output(output, input_paths([data]), "report")
        with stderr_progress(f"{trials} random starts", quiet=quiet) as tick:
            result = landscape_beyond(data, parse_widths(widths) if widths else None, layout, loss_name,
                                      trials, seed, progress=tick)
        if output is not None:
            write_output(output, result)
        return result

    emit(run_guarded(debug, body, data), fmt, color, quiet)
    raise typer.Exit(int(ExitCode.OK))


STATS_HELP = (
    "`dlcert stats merge a.npz b.npz -o all.npz` sums statistics files of disjoint shards "
    "(same dx, dy and precision). Formats, shards and the Dask engine: docs/data.md."
)


@app.command("stats", epilog=NO_VERDICT_EXIT_HELP + " " + STATS_HELP)
def stats_command(
    data: Annotated[list[str], typer.Argument(
        metavar="DATA", help="Data, summed: .npy pairs X.npy Y.npy (memory-mapped), .npz (X, Y or statistics), "
        "HDF5 (file.h5 = /X, /Y; or file.h5:/X file.h5:/Y), Zarr (store.zarr = X, Y; or store.zarr:X store.zarr:Y), "
        "Parquet (rows, with --x-columns/--y-columns), or a directory or glob of shards of these. "
        "`merge a.npz b.npz` sums statistics files.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Statistics file to write (.npz).")],
    chunk_size: Annotated[int | None, typer.Option(
        min=1, help="Samples per chunk (default: about 32 MB of float64 per chunk).")] = None,
    layout: LayoutOpt = None,
    engine: Annotated[Engine, typer.Option(help="single: this process, chunk by chunk; dask: a Dask cluster (extra: pip install 'dlcert\\[dask]').")] = Engine.SINGLE,
    scheduler: Annotated[str | None, typer.Option(help="With --engine dask: scheduler address tcp://HOST:PORT (default: $DASK_SCHEDULER_ADDRESS, else a LocalCluster of this machine's cores), or threads / synchronous.")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes of the LocalCluster (default: the number of cores).")] = None,
    connect_timeout: Annotated[float, typer.Option(min=0.1, help="Seconds to wait for the Dask scheduler (or the LocalCluster) to answer.")] = 30.0,
    x_columns: Annotated[str | None, typer.Option("--x-columns", help="Parquet: the X columns, comma-separated names or patterns (x_*), in table order.")] = None,
    y_columns: Annotated[str | None, typer.Option("--y-columns", help="Parquet: the Y columns, as --x-columns.")] = None,
    allow_mixed_precision: Annotated[bool, typer.Option("--allow-mixed-precision", help="merge: sum files of different precision (records the coarsest).")] = False,
    debug: DebugOpt = False,
) -> None:
    """Compute Sxx, Syx, syy, m in one streaming pass; check and landscape accept the file."""

    def body() -> Statistics:
        sources = [Path(p.split(":")[0]) for p in data if p != "merge"]
        check_output(output, sources, "the statistics")
        if data[0] == "merge":
            result = merge_statistics([Path(p) for p in data[1:]], allow_mixed_precision=allow_mixed_precision)
        else:
            with stderr_progress("reading") as tick:
                result = compute_statistics(
                    data, engine=engine, layout=layout, chunk_size=chunk_size, x_columns=x_columns,
                    y_columns=y_columns, scheduler=scheduler, workers=workers, timeout=connect_timeout,
                    progress=tick)
        save_statistics(output, result, inputs=sources)
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
    output: OutputOpt = None,
    color: ColorOpt = ColorMode.AUTO,
    quiet: QuietOpt = False,
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
    if output is not None:
        run_guarded(debug, lambda: write_output(output, result))
    emit(result, fmt, color, quiet)
    raise typer.Exit(int(ExitCode.OK if result.confirmed else ExitCode.INCONCLUSIVE))


@app.command("schema", epilog=NO_VERDICT_EXIT_HELP)
def schema_command(
    name: Annotated[SchemaName, typer.Argument(help="Which contract: check (dlcert.check/1), batch, landscape, recheck.")],
) -> None:
    """Print the JSON Schema of a machine contract (shipped inside the package)."""
    sys.stdout.write(schema_text(name))
    raise typer.Exit(int(ExitCode.OK))


def main() -> None:
    """Console-script entry point."""
    app()
