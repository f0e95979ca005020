"""The rich view of a :class:`~dlcert.certificate.Certificate` (``dlcert check``)."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Console, ConsoleOptions, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from dlcert.certificate import Certificate
from dlcert.render.theme import fmt, tick


class CheckView:
    """Panels and tables for one certificate; every claim shows its number and tolerance."""

    def __init__(self, cert: Certificate, title: str = "", witness_path: str | None = None,
                 exit_note: tuple[int, str] | None = None) -> None:
        self.cert = cert
        self.title = title
        self.witness_path = witness_path
        self.exit_note = exit_note  # (the code the process returns, why), e.g. under --require

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[RenderableType]:
        c = self.cert
        yield self._headline()
        yield self._summary()
        yield self._layers()
        if c.hessian.method != "none":
            yield self._hessian()
        if c.rank_rule.decision is not None or c.rank_rule.index_set is not None or c.channel is not None:
            yield self._rank_rule()
        if c.channel is not None and c.channel.missing:
            yield self._missing()
        if c.witness is not None:
            yield self._witness()
        yield self._theorems()
        if c.reasons:
            yield Panel(
                Group(*[Text(f"- {r.message} [{r.code}]") for r in c.reasons]),
                title="reasons (first: the rule that decided)", title_align="left",
            )

    def _headline(self) -> Panel:
        c = self.cert
        v = c.verdict.value
        code, why = self.exit_note or (int(c.exit_code), "")
        head = Text.assemble((v.replace("_", " ").upper(), f"verdict.{v}"), "  ",
                             (f"exit {code}" + (f" ({why})" if why else ""), "muted"))
        body = Group(head, Text(c.message))
        return Panel(body, title=self.title or "dlcert check", title_align="left",
                     border_style=f"verdict.{v}")

    def _summary(self) -> Table:
        c = self.cert
        t = c.tolerances
        tab = Table(title="measurements", title_justify="left", show_header=True,
                    header_style="label")
        tab.add_column("quantity")
        tab.add_column("value", justify="right", style="number")
        tab.add_column("judged against")
        tab.add_row("loss L(W)", fmt(c.loss, ".10g"), "")
        tab.add_row("optimal loss L*", fmt(c.optimal_loss, ".10g"), "exact (docs/verdicts.md)")
        tab.add_row("OLS loss L_ols", fmt(c.ols_loss, ".10g"), "")
        tab.add_row("gap L(W) - L*", fmt(c.gap, ".3e"), "stable formula")
        cv = c.critical_value
        err = cv.error if cv is not None else 0.0
        tab.add_row("relative gap", fmt(c.relative_gap, ".3e"),
                    f"ftol {t.ftol:.1e}; error bound {err:.1e}")
        if cv is not None and cv.index_set is not None:
            tab.add_row("critical value c_S", fmt(cv.value, ".10g"),
                        "S = {" + ", ".join(map(str, cv.index_set)) + "}; (c_S - L*)/(syy/2) = "
                        + fmt(cv.above_optimum, ".3e"))
            tab.add_row("(L - c_S) / (syy/2)", fmt(cv.excess, ".3e"), f"ftol {t.ftol:.1e} + error {err:.1e}")
        tab.add_row("gradient norm", fmt(c.gradient_norm, ".3e"), "")
        tab.add_row("relative gradient norm", fmt(c.relative_gradient_norm, ".3e"),
                    f"gtol {t.gtol:.1e} ({'<=' if c.relative_gradient_norm <= t.gtol else '>'}); "
                    f"precision floor {t.gradient_floor:.1e}")
        tab.add_row("precision (eps)", f"{t.weights_eps or t.eps:.2g} / {t.eps:.2g}",
                    "weights / data: tolerances follow the data, floors the weights "
                    "(docs/tolerances.md)")
        units = (c.evidence or {}).get("normalization", {}).get("unit_exponents") or []
        if units:
            top = max(abs(e) for u in units for e in u)
            tab.add_row("hidden units rescaled", f"up to 2^{top}",
                        "exactly (powers of two) before measuring: relative gradients, eigenvalues "
                        "and channels are the balanced copy's (docs/verdicts.md)")
        tab.add_row("widths", ",".join(map(str, c.widths)), f"N = {len(c.widths) - 1} layers")
        tab.add_row("k (bottleneck width)", str(c.k),
                    "hidden bottleneck at " + (", ".join(map(str, c.bottleneck_layers)) or "none"))
        sv = ", ".join(fmt(s, ".4g") for s in c.product_singular_values[:8])
        tab.add_row("rank R", str(c.product_rank),
                    f"rank rtol {t.products_rtol:.1e}; gap {c.rank_gap:.2e}; sigma(R) = {sv}")
        tab.add_row("s_i (whitened target)", ", ".join(fmt(s, ".4g") for s in c.singular_values[:8]),
                    f"m = {c.m} samples")
        return tab

    def _layers(self) -> Table:
        c = self.cert
        tab = Table(title="per layer", title_justify="left", header_style="label")
        tab.add_column("layer")
        tab.add_column("shape")
        tab.add_column("||dL/dW_i||", justify="right", style="number")
        tab.add_column("relative", justify="right", style="number")
        for i, (g, r) in enumerate(zip(c.layer_gradient_norms, c.layer_relative_gradient_norms,
                                       strict=True)):
            tab.add_row(f"W{i + 1}", f"{c.widths[i + 1]} x {c.widths[i]}", fmt(g, ".3e"),
                        fmt(r, ".3e"))
        return tab

    def _hessian(self) -> Table:
        h = self.cert.hessian
        tab = Table(title="Hessian", title_justify="left", header_style="label")
        tab.add_column("quantity")
        tab.add_column("value", justify="right", style="number")
        tab.add_row("lambda_min", fmt(h.min_eigenvalue, ".4e") + " +- " + fmt(h.min_eigenvalue_error, ".1e"))
        tab.add_row("lambda_max", fmt(h.max_eigenvalue, ".4e") + " +- " + fmt(h.max_eigenvalue_error, ".1e"))
        tab.add_row("method", h.method)
        tab.add_row("converged", tick(h.converged))
        tab.add_row("iterations", str(h.iterations))
        tab.add_row("Hessian-vector products", str(h.hvp_count))
        tab.add_row("residual / |lambda_max|", fmt(h.residual, ".2e"))
        tab.add_row("seconds", fmt(h.seconds, ".3f"))
        tab.add_row("curvature along structured direction", fmt(h.direction_curvature, ".4e"))
        tab.add_row("negative threshold", fmt(
            -self.cert.tolerances.hessian_rtol
            * max(abs(h.max_eigenvalue or 0.0), abs(h.min_eigenvalue or 0.0)), ".3e"))
        if h.extremes:
            tab.add_row("smallest eigenvalues", ", ".join(fmt(x, ".4e") for x in h.extremes))
        return tab

    def _rank_rule(self) -> Table:
        r = self.cert.rank_rule
        tab = Table(title="strictness: rank rule (after Achour et al. 2021), channels (docs/strictness.md)",
                    title_justify="left", header_style="label")
        tab.add_column("quantity")
        tab.add_column("value", justify="right")
        tab.add_row("learned index set S", "{" + ", ".join(map(str, r.index_set or [])) + "}")
        tab.add_row("S is a top set", tick(r.top_set))
        tab.add_row("j_b", fmt(r.j_b))
        tab.add_row("j_t", fmt(r.j_t))
        tab.add_row("tightened", tick(r.tightened))
        decision = r.decision or f"undecided: {r.reason}"
        if r.decision == "strict_saddle" and r.top_set:
            decision = "not tightened (proves nothing: the channels below decide)"
        tab.add_row("decision", decision)
        ch = self.cert.channel
        if ch is not None:
            where = ("none" if ch.layers is None
                     else f"W{ch.layers[0]} -> W{ch.layers[1]} ({ch.dead_end} dead end)")
            tab.add_row("strongest second-order channel",
                        f"{ch.strength:.3e} at {where}; rounding <= {10 * ch.noise:.1e}")
            tab.add_row("weaker factor of any channel",
                        f"{ch.weaker_factor:.3e} (coupling or reach; absence needs <= {10 * ch.noise:.1e})")
            tab.add_row("input dead ends (A_l z = 0)",
                        ", ".join(f"W{i}" for i in ch.input_dead_ends) or "none")
            tab.add_row("output dead ends (y^T B_l S = 0)",
                        ", ".join(f"W{i}" for i in ch.output_dead_ends) or "none")
        return tab

    def _missing(self) -> Table:
        ch = self.cert.channel
        assert ch is not None
        tab = Table(title="missing directions: where each can be routed at order 2 (docs/strictness.md, "
                          "section 3)", title_justify="left", header_style="label")
        tab.add_column("l")
        tab.add_column("s_l", justify="right", style="number")
        tab.add_column("v_l reaches the input of")
        tab.add_column("u_l reads the output of")
        tab.add_column("strongest channel carrying l", justify="right")

        def layers(ls: list[int]) -> str:
            return ", ".join(f"W{i}" for i in ls) or "none"

        for d in ch.missing:
            where = ("no pair with a dead end" if d.layers is None
                     else f"none: {d.strength:.1e} is rounding" if d.strength <= 10 * ch.noise
                     else f"{d.strength:.3e} at W{d.layers[0]} -> W{d.layers[1]} ({d.dead_end} dead end)")
            tab.add_row(str(d.index), fmt(d.s), layers(d.input_layers), layers(d.output_layers), where)
        return tab

    def _witness(self) -> Table:
        w = self.cert.witness
        assert w is not None
        tab = Table(title="escape witness", title_justify="left", header_style="label")
        tab.add_column("quantity")
        tab.add_column("value", justify="right", style="number")
        tab.add_row("kind", w.kind)
        tab.add_row("order q (loss drops like t^q)", str(w.order))
        tab.add_row("coefficient of t^q (||V|| = 1)", fmt(w.coefficient, ".4e"))
        tab.add_row("radius ||W' - W||", fmt(w.radius, ".4g"))
        tab.add_row("loss decrease L(W) - L(W')", fmt(w.loss_decrease, ".4e"))
        tab.add_row("rounding-error bound", fmt(w.rounding_bound, ".2e"))
        tab.add_row("layers moved", ", ".join(f"W{i}" for i in w.layers_moved))
        if self.witness_path:
            tab.add_row("saved to", self.witness_path)
        return tab

    def _theorems(self) -> Table:
        tab = Table(title="theorems (docs/theorems.md)", title_justify="left", header_style="label")
        tab.add_column("id")
        tab.add_column("applies")
        tab.add_column("holds")
        tab.add_column("conclusion")
        for th in self.cert.theorems:
            tab.add_row(th.id, tick(th.applies), tick(th.holds), th.conclusion)
        return tab
