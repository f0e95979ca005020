"""The rich view of a :class:`~dlcert.landscape.Landscape` (``dlcert landscape``)."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dlcert.landscape import (
    GLOBAL,
    NON_STRICT_POSSIBLE,
    STRICT,
    ConvexLandscape,
    Landscape,
    TrialsSummary,
)
from dlcert.render.theme import fmt, tick

_CLASS_STYLE = {
    GLOBAL: "verdict.global_minimum",
    STRICT: "verdict.strict_saddle",
    NON_STRICT_POSSIBLE: "verdict.non_strict_saddle",
}


def trial_rows(t: TrialsSummary) -> list[tuple[str, int]]:
    """The rows of the random-starts table: one per verdict, counts summing to ``t.n``."""
    return list(t.counts.items())


class LandscapeView:
    """Panels and tables for one landscape; every claim shows its number."""

    def __init__(self, landscape: Landscape, title: str = "") -> None:
        self.landscape = landscape
        self.title = title

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        yield self._headline()
        yield self._assumptions()
        yield self._ladder()
        if self.landscape.trials is not None:
            yield self._trials()
        yield self._theorems()
        if self.landscape.notes:
            yield Panel(Group(*[Text("- " + n) for n in self.landscape.notes]), title="notes",
                        title_align="left")

    def _headline(self) -> Panel:
        ls = self.landscape
        sv = ", ".join(fmt(s, ".6g") for s in ls.singular_values[:12])
        more = f" (+{len(ls.singular_values) - 12} more)" if len(ls.singular_values) > 12 else ""
        body = Group(
            Text.assemble(("widths ", "label"), ",".join(map(str, ls.widths)),
                          f"   N = {ls.n_layers} layers, m = {ls.m} samples"),
            Text.assemble(("k ", "label"), str(ls.k), "  (k' = min(k, rank Sigma) = ",
                          str(ls.k_effective), ");  bottleneck layers: ",
                          ", ".join(map(str, ls.bottleneck_layers)) or "none (k = min(dx, dy))"),
            Text.assemble(("L* ", "label"), (fmt(ls.optimal_loss, ".10g"), "number"),
                          "   ", ("L_ols ", "label"), (fmt(ls.ols_loss, ".10g"), "number"),
                          "   ", ("syy/2 ", "label"), (fmt(ls.half_syy, ".10g"), "number")),
            Text.assemble(("s_i ", "label"), sv + more, f"   ({ls.sigma_rank} nonzero)"),
        )
        return Panel(body, title=self.title or "dlcert landscape", title_align="left")

    def _assumptions(self) -> Table:
        a = self.landscape.assumptions
        tab = Table(title="assumptions", title_justify="left", header_style="label")
        tab.add_column("quantity")
        tab.add_column("value", justify="right", style="number")
        tab.add_row("rank Sxx", f"{a.sxx_rank} of dx = {a.dx}")
        tab.add_row("condition number of Sxx", fmt(a.sxx_condition, ".4g"))
        tab.add_row("rank Syx", f"{a.syx_rank} of min(dx, dy) = {min(a.dx, a.dy)}")
        tab.add_row("rank Sigma", str(a.sigma_rank))
        tab.add_row("dy <= dx", tick(a.dy_le_dx))
        tab.add_row("X full row rank", tick(a.x_full_row_rank))
        tab.add_row("Y full row rank", tick(a.y_full_row_rank))
        tab.add_row("smallest relative gap of Sigma's eigenvalues", fmt(a.sigma_min_relative_gap, ".4e"))
        tab.add_row("Sigma's eigenvalues distinct", tick(a.sigma_distinct))
        tab.add_row("(s_k^2 - s_(k+1)^2) / s_1^2", fmt(a.k_gap, ".4e"))
        return tab

    def _ladder(self) -> Table:
        ls = self.landscape
        shown = len(ls.critical_values)
        tab = Table(
            title=f"critical values: lowest {shown} of {ls.critical_value_count}",
            title_justify="left", header_style="label",
        )
        tab.add_column("#", justify="right")
        tab.add_column("value", justify="right", style="number")
        tab.add_column("value - L*", justify="right", style="number")
        tab.add_column("relative", justify="right", style="number")
        tab.add_column("index set I")
        tab.add_column("classes")
        for i, row in enumerate(ls.critical_values, start=1):
            classes = Text(", ").join(Text(c, _CLASS_STYLE.get(c, "")) for c in row.classes)
            tab.add_row(str(i), fmt(row.value, ".10g"), fmt(row.gap, ".4e"), fmt(row.relative_gap, ".3e"),
                        "{" + ", ".join(map(str, row.index_set)) + "}", classes)
        return tab

    def _trials(self) -> Group:
        t = self.landscape.trials
        assert t is not None
        tab = Table(title=f"random starts: {t.n} (seed {t.seed})", title_justify="left",
                    header_style="label")
        tab.add_column("end point")
        tab.add_column("count", justify="right", style="number")
        tab.add_column("of which L-BFGS-B not converged", justify="right", style="number")
        for verdict, count in trial_rows(t):
            unconverged = sum(1 for r in t.records if r.verdict == verdict and not r.converged)
            tab.add_row(verdict, str(count), str(unconverged))
        note = (f"counts sum to the {t.n} starts; {t.not_converged} of them stopped without "
                "L-BFGS-B's convergence flag (then polished and certified like the others)")
        return Group(tab, Text(note, "muted"),
                     Text(f"init: {t.init}; L-BFGS-B then Newton polish (dlcert.trials)", "muted"))

    def _theorems(self) -> Table:
        tab = Table(title="theorems (docs/theorems.md)", title_justify="left", header_style="label")
        tab.add_column("id")
        tab.add_column("applies")
        tab.add_column("conclusion")
        for th in self.landscape.theorems:
            tab.add_row(th.id, tick(th.applies), th.conclusion)
        return tab


class ConvexLandscapeView:
    """``landscape --loss`` (non-square): the architecture's theorems and each random start's verdict."""

    def __init__(self, landscape: ConvexLandscape) -> None:
        self.landscape = landscape

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        ls = self.landscape
        attained = "not checked" if ls.attained is None else ("yes" if ls.attained else "no")
        yield Panel(Group(
            Text.assemble(("loss ", "label"), ls.loss, ("   widths ", "label"), ",".join(map(str, ls.widths)),
                          f"   N = {ls.n_layers} layers, m = {ls.m} samples"),
            Text.assemble(("k ", "label"), str(ls.k), "  bottleneck layers: ",
                          ", ".join(map(str, ls.bottleneck_layers)) or "none (k = min(dx, dy))",
                          ("   infimum of f attained: ", "label"), attained),
        ), title=f"dlcert landscape --loss {ls.loss}", title_align="left")
        if ls.trials is not None:
            t = ls.trials
            tab = Table(title=f"random starts: {t.n} (seed {t.seed}), each certified by the rules of "
                        "check --loss", title_justify="left", header_style="label")
            tab.add_column("#", justify="right")
            tab.add_column("verdict / rule (theorem)", overflow="fold", min_width=34)
            tab.add_column("f(R)", justify="right", style="number")
            tab.add_column("rel. grad f", justify="right", style="number")
            tab.add_column("rel. grad W", justify="right", style="number")
            tab.add_column("rank", justify="right")
            tab.add_column("L-BFGS-B", justify="right")
            for r in t.records:
                tab.add_row(str(r.index),
                            Text.assemble((r.verdict, f"verdict.{r.verdict}"), "\n",
                                          f"{r.rule} ({r.theorem or '-'})"),
                            fmt(r.loss, ".8g"), fmt(r.relative_f_gradient, ".2e"),
                            fmt(r.relative_gradient_norm, ".2e"), str(r.product_rank),
                            f"{r.iterations} it" + ("" if r.converged else " (not converged)"))
            yield tab
            summary = ", ".join(f"{v}: {c}" for v, c in t.counts.items())
            rules = ", ".join(f"{code}: {c}" for code, c in t.rules.items())
            yield Text(f"summary: {summary} (of {t.n}); reason codes: {rules or 'none'}; "
                       f"{t.not_converged} stopped without L-BFGS-B's convergence flag", "muted")
            yield Text(f"init: {t.init}; L-BFGS-B then Newton polish (dlcert.trials)", "muted")
        tab = Table(title="theorems (docs/losses.md)", title_justify="left", header_style="label")
        tab.add_column("id")
        tab.add_column("applies")
        tab.add_column("conclusion")
        for th in ls.theorems:
            tab.add_row(th.id, tick(th.applies), th.conclusion)
        yield tab
        if ls.notes:
            yield Panel(Group(*[Text("- " + n) for n in ls.notes]), title="notes", title_align="left")
