"""Notebook display of results: ``_repr_html_`` and ``__rich__`` delegate here.

:func:`certificate_html` is a self-contained HTML fragment (inline styles only, every value
escaped) for Jupyter; :func:`certificate_rich` is the terminal report (``CheckView``) followed
by the loss in the units training printed (MSE, conversion stated once). The same pair exists
for :class:`~dlcert.polishing.Polish`. Nothing here prints.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from io import StringIO
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.panel import Panel
from rich.text import Text

from dlcert.certificate import Certificate
from dlcert.render.theme import fmt

__all__ = ["certificate_html", "certificate_rich", "loss_line", "polish_html", "polish_rich"]

_COLOURS = {
    "global_minimum": "#1a7f37",
    "strict_saddle": "#9a6700",
    "non_strict_saddle": "#8250df",
    "not_critical": "#cf222e",
    "inconclusive": "#0969da",
}


def _num(x: Any, spec: str = ".4g") -> str:
    return fmt(None if x is None else x if isinstance(x, (bool, int)) else float(x), spec)


def _yes(x: bool | None) -> str:
    return "-" if x is None else ("yes" if x else "no")


def loss_line(cert: Certificate) -> str:
    """``loss = 1/2 sum ||.||^2`` beside the MSE training printed, with the conversion."""
    from dlcert.api import loss_summary

    s = loss_summary(cert)
    return (
        f"loss L(W) = 1/2 sum ||W_N...W_1 x - y||^2 = {_num(s['loss'], '.6g')}; as the mean "
        f"squared error training prints, MSE = {_num(s['mse'], '.6g')} (optimum "
        f"{_num(s['optimal_mse'], '.6g')}); {s['conversion']}"
    )


def _rows(rows: list[tuple[str, str, str]]) -> str:
    cells = "".join(
        "<tr>" + "".join(f"<td style='padding:2px 8px;text-align:left'>{html.escape(c)}</td>"
                         for c in row) + "</tr>"
        for row in rows
    )
    return f"<table style='border-collapse:collapse;font-size:90%'>{cells}</table>"


def _badge(verdict: str) -> str:
    colour = _COLOURS.get(verdict, "#57606a")
    return (
        f"<span style='background:{colour};color:white;padding:2px 8px;border-radius:4px;"
        f"font-weight:bold'>{html.escape(verdict.replace('_', ' ').upper())}</span>"
    )


def certificate_html(cert: Certificate) -> str:
    """An HTML fragment: verdict, message, measurements with tolerances, theorems, witness."""
    t = cert.tolerances
    rg, rn = cert.relative_gap, cert.relative_gradient_norm
    measurements = [
        ("loss L(W)", _num(cert.loss, ".10g"), "1/2 sum ||.||^2 over all samples"),
        ("MSE", _num(_mse(cert), ".6g"), _conversion(cert)),
        ("optimal loss L*", _num(cert.optimal_loss, ".10g"), "exact"),
        ("relative gap", _num(rg, ".3e"), f"ftol {t.ftol:.1e} ({'<=' if rg <= t.ftol else '>'})"),
        ("relative gradient norm", _num(rn, ".3e"),
         f"gtol {t.gtol:.1e} ({'<=' if rn <= t.gtol else '>'})"),
        ("widths", ",".join(map(str, cert.widths)), f"k = {cert.k}"),
        ("rank R", str(cert.product_rank), f"rank rtol {t.products_rtol:.1e}"),
        ("precision (eps)", f"{t.weights_eps or t.eps:.2g} / {t.eps:.2g}",
         "weights / data: tolerances follow the data, floors the weights"),
        ("lambda_min (Hessian)", _num(cert.hessian.min_eigenvalue, ".4e"),
         f"{cert.hessian.method}, converged {_yes(cert.hessian.converged)}"),
        ("samples m", str(cert.m), ""),
    ]
    parts = [
        "<div class='dlcert-certificate'>",
        f"<p>{_badge(cert.verdict.value)} <span style='color:#57606a'>exit "
        f"{int(cert.exit_code)}</span></p>",
        f"<p>{html.escape(cert.message)}</p>",
        _rows(measurements),
    ]
    if cert.witness is not None:
        w = cert.witness
        parts.append("<p><b>escape witness</b></p>")
        parts.append(_rows([
            ("kind", w.kind, f"order {w.order}"),
            ("radius ||W' - W||", _num(w.radius), ""),
            ("loss decrease", _num(w.loss_decrease, ".4e"), f"rounding bound {w.rounding_bound:.2e}"),
        ]))
    parts.append("<details><summary>theorems</summary>")
    parts.append(_rows([("id", "applies / holds", "conclusion")] + [
        (th.id, f"{_yes(th.applies)} / {_yes(th.holds)}", th.conclusion) for th in cert.theorems
    ]))
    parts.append("</details>")
    if cert.reasons:
        items = "".join(f"<li>{html.escape(str(r))}</li>" for r in cert.reasons)
        parts.append(f"<p><b>reasons and notes</b></p><ul>{items}</ul>")
    parts.append("</div>")
    return "".join(parts)


class Themed:
    """A renderable drawn with dlcert's named styles on any console (a notebook's has none)."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        from dlcert.render.theme import THEME

        buf = StringIO()
        inner = Console(file=buf, width=options.max_width, theme=THEME, highlight=False,
                        color_system="truecolor" if console.color_system else None,
                        force_terminal=console.color_system is not None)
        inner.print(self.renderable)
        yield Text.from_ansi(buf.getvalue().rstrip("\n"))


def certificate_rich(cert: Certificate) -> RenderableType:
    """The terminal report followed by the loss in MSE units (conversion stated)."""
    from dlcert.render.check_text import CheckView

    return Themed(Group(CheckView(cert), Text(loss_line(cert), style="dim")))


def _mse(cert: Certificate) -> float:
    from dlcert.api import loss_summary

    return float(loss_summary(cert)["mse"])


def _conversion(cert: Certificate) -> str:
    from dlcert.api import loss_summary

    return str(loss_summary(cert)["conversion"])


# ---------------------------------------------------------------------------------------------
# polish


def polish_rows(p: Any) -> list[tuple[str, str, str]]:
    """The numbers of a :class:`~dlcert.polishing.Polish`, one row each."""
    return [
        ("polished point", p.verdict.value, f"method {p.method}"),
        ("distance ||W' - W||_F", _num(p.distance, ".4e"),
         f"{100 * p.relative_distance:.3g}% of ||W||_F"),
        ("loss L(W) -> L(W')", f"{_num(p.loss_before, '.8g')} -> {_num(p.loss_after, '.8g')}",
         f"change {p.loss_change:+.3e} ({100 * p.relative_loss_change:+.3g}% of syy/2)"),
        ("relative gradient", f"{_num(p.relative_gradient_before, '.3e')} -> "
         f"{_num(p.relative_gradient_after, '.3e')}",
         f"gtol {p.certificate.tolerances.gtol:.1e}"),
        ("steps", str(p.steps), f"{p.method}; {p.lbfgs_iterations} L-BFGS-B iterations"),
        ("seconds", _num(p.seconds, ".3f"), "polish and certification"),
    ]


def polish_rich(p: Any) -> RenderableType:
    """A panel with the polish's numbers and sentence (printed after the stored point's report)."""
    lines = [Text(p.sentence())]
    lines += [Text(f"{a}: {b}" + (f"  ({c})" if c else "")) for a, b, c in polish_rows(p)]
    v = p.verdict.value
    return Themed(Panel(Group(*lines), title="polish: nearest critical point (--polish)",
                        title_align="left", border_style=f"verdict.{v}"))


def polish_html(p: Any) -> str:
    """HTML: the polish's numbers, then the polished point's certificate."""
    return (
        "<div class='dlcert-polish'><p><b>polish</b>: " + html.escape(p.sentence()) + "</p>"
        + _rows(polish_rows(p)) + certificate_html(p.certificate) + "</div>"
    )
