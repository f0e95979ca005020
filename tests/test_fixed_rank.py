"""The second-order test on the fixed-rank manifold (dlcert.convex.fixed_rank_test and its rules).

Oracles share no code with dlcert: the closed-form spectrum of the Riemannian Hessian of
``1/2 ||R - T||^2`` on the rank-r manifold at a point keeping r singular triplets of T (pairs
``1 +- s_l / s_i``), dense central-difference Hessians of the *network* loss written from the raw
samples in plain numpy, and plain numpy evaluations of the loss at the witness points.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import minimize

from dlcert.certificate import Verdict
from dlcert.convex import CONVEX_RULES, certify_convex, decide, measure
from dlcert.losses import CrossEntropy, DataObjective, Square

# ----------------------------------------------------------------------------- plain numpy oracles


def _prod(ws: list[np.ndarray] | tuple[np.ndarray, ...]) -> np.ndarray:
    out = ws[0]
    for w in ws[1:]:
        out = w @ out
    return out


def _square_loss(ws: list[np.ndarray] | tuple[np.ndarray, ...], X: np.ndarray, Y: np.ndarray) -> float:
    total = 0.0
    R = _prod(ws)
    for j in range(X.shape[1]):  # sample by sample, as the textbook writes it
        r = R @ X[:, j] - Y[:, j]
        total += 0.5 * float(r @ r)
    return total


def _ce_loss(ws: list[np.ndarray] | tuple[np.ndarray, ...], X: np.ndarray, Y: np.ndarray) -> float:
    Z = _prod(ws) @ X
    top = Z.max(axis=0)
    return float(np.sum(top + np.log(np.sum(np.exp(Z - top), axis=0)) - np.sum(Y * Z, axis=0)))


def _fd_hessian(loss: object, ws: list[np.ndarray], h: float = 1e-4) -> np.ndarray:
    """Dense Hessian of ``loss(ws)`` over all layer entries by central differences of values."""
    shapes = [w.shape for w in ws]
    sizes = [w.size for w in ws]
    x0 = np.concatenate([w.ravel() for w in ws])

    def f(x: np.ndarray) -> float:
        out, i = [], 0
        for sh, sz in zip(shapes, sizes, strict=True):
            out.append(x[i:i + sz].reshape(sh))
            i += sz
        return float(loss(out))  # type: ignore[operator]

    n = x0.size
    H = np.zeros((n, n))
    f0 = f(x0)
    for a in range(n):
        for b in range(a, n):
            ea, eb = np.zeros(n), np.zeros(n)
            ea[a], eb[b] = h, h
            if a == b:
                H[a, a] = (f(x0 + ea) - 2 * f0 + f(x0 - ea)) / h**2
            else:
                H[a, b] = H[b, a] = (f(x0 + ea + eb) - f(x0 + ea - eb) - f(x0 - ea + eb)
                                     + f(x0 - ea - eb)) / (4 * h * h)
    return H


def _whitened(seed: int, sv: tuple[float, ...], m: int = 50, dx: int = 5) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray, np.ndarray,
                                                                                      np.ndarray]:
    """X with X X^T = m I and Y = T X with T of the given singular values: f(R) = m/2 ||R - T||^2 + c."""
    rng = np.random.default_rng(seed)
    dy = len(sv)
    Q, _ = np.linalg.qr(rng.normal(size=(m, dx)))
    X = np.sqrt(m) * Q.T
    U, _ = np.linalg.qr(rng.normal(size=(dy, dy)))
    V, _ = np.linalg.qr(rng.normal(size=(dx, dx)))
    s = np.array(sv)
    T = U @ np.diag(s) @ V[:, :dy].T
    return X, T @ X, U, s, V[:, :dy]


def _keep(U: np.ndarray, s: np.ndarray, V: np.ndarray, keep: list[int], depth: int,
          rng: np.random.Generator) -> list[np.ndarray]:
    """A network (depth 2 or 3, hidden width len(keep)) whose product keeps the given triplets,
    with a random invertible gauge between the layers."""
    r = len(keep)
    W1 = np.sqrt(s[keep])[:, None] * V[:, keep].T
    WN = U[:, keep] * np.sqrt(s[keep])
    G = rng.normal(size=(r, r)) + 2 * np.eye(r)
    if depth == 2:
        return [G @ W1, WN @ np.linalg.inv(G)]
    G2 = rng.normal(size=(r, r)) + 2 * np.eye(r)
    return [G @ W1, G2 @ np.linalg.inv(G), WN @ np.linalg.inv(G2)]


SV = (3.0, 2.0, 1.2, 0.5)


def _closed_form_min(s: np.ndarray, keep: list[int], m: int) -> float:
    """Smallest eigenvalue of the Riemannian Hessian of m/2 ||R - T||^2 at the point keeping `keep`."""
    pairs = [1 - s[lo] / s[i] for i in keep for lo in range(len(s)) if lo not in keep]
    return m * min([1.0, *pairs])


# ------------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("depth", [2, 3])
def test_top_truncation_is_a_rank_constrained_minimum_hence_global_for_the_square_loss(depth: int) -> None:
    X, Y, U, s, V = _whitened(1, SV)
    ws = _keep(U, s, V, [0, 1], depth, np.random.default_rng(2))
    cert = certify_convex(ws, DataObjective(Square(), X, Y), loss_name="square")
    assert cert.product_rank == cert.k == 2 and not cert.no_bottleneck
    assert cert.verdict == Verdict.GLOBAL_MINIMUM and cert.rule == "global.square_rank_constrained_minimum"
    assert cert.theorem == "zhang2019.cor1"
    fr = cert.fixed_rank
    assert fr is not None and fr.method == "dense" and fr.dimension == 2 * (5 + 4 - 2)
    assert fr.min_eigenvalue == pytest.approx(_closed_form_min(s, [0, 1], 50), rel=1e-9)
    assert fr.error_bound is not None and fr.min_eigenvalue > 1e3 * fr.error_bound
    # independent: the network Hessian (finite differences of plain-numpy loss values) is PSD
    H = _fd_hessian(lambda p: _square_loss(p, X, Y), ws)
    lam = np.linalg.eigvalsh(H)
    assert lam[0] > -1e-4 * lam[-1]


@pytest.mark.parametrize(("keep", "depth"), [([0, 2], 2), ([1, 2], 3), ([0, 3], 2)])
def test_other_triplets_are_saddles_with_a_lifted_witness(keep: list[int], depth: int) -> None:
    X, Y, U, s, V = _whitened(3, SV)
    ws = _keep(U, s, V, keep, depth, np.random.default_rng(4))
    cert = certify_convex(ws, DataObjective(Square(), X, Y), loss_name="square")
    assert cert.verdict == Verdict.STRICT_SADDLE and cert.rule == "strict.fixed_rank_negative_curvature"
    fr = cert.fixed_rank
    assert fr is not None and fr.min_eigenvalue is not None and fr.network_curvature is not None
    assert fr.min_eigenvalue == pytest.approx(_closed_form_min(s, keep, 50), rel=1e-9)
    w = cert.witness
    assert w is not None and w.order == 2 and w.kind == "negative_curvature"
    assert w.layers_moved == [1, depth]  # only the first and the last layer move
    # plain numpy: the loss at W' is below the loss at W by more than the claimed rounding bound
    drop = _square_loss(ws, X, Y) - _square_loss(w.point, X, Y)
    assert drop > w.rounding_bound and drop == pytest.approx(w.loss_decrease, rel=1e-6)
    # plain numpy: the network loss has negative curvature along the unit direction W' - W, and
    # it is the curvature the certificate reports
    v = [b - a for a, b in zip(ws, w.point, strict=True)]
    norm = np.sqrt(sum(float(np.sum(x * x)) for x in v))
    v = [x / norm for x in v]
    h = 1e-3

    def along(t: float) -> float:
        return _square_loss([a + t * x for a, x in zip(ws, v, strict=True)], X, Y)

    second = (along(h) - 2 * along(0.0) + along(-h)) / h**2
    assert second < 0 and second == pytest.approx(fr.network_curvature, rel=1e-4)
    H = _fd_hessian(lambda p: _square_loss(p, X, Y), ws)
    assert np.linalg.eigvalsh(H)[0] < 0


def test_tied_singular_values_leave_the_test_undecided() -> None:
    """s_2 = s_3: keeping triplet 2 or 3 gives the same value; the fixed-rank Hessian is singular."""
    X, Y, U, s, V = _whitened(5, (3.0, 2.0, 2.0, 0.5))
    ws = _keep(U, s, V, [0, 1], 2, np.random.default_rng(6))
    cert = certify_convex(ws, DataObjective(Square(), X, Y), loss_name="square")
    assert cert.verdict == Verdict.INCONCLUSIVE and cert.rule == "inconclusive.fixed_rank_undecided"
    fr = cert.fixed_rank
    assert fr is not None and fr.min_eigenvalue is not None and fr.error_bound is not None
    assert abs(fr.min_eigenvalue) <= fr.error_bound
    assert "error bound" in cert.message


def test_lanczos_path_shows_a_saddle_but_never_certifies_a_minimum() -> None:
    X, Y, U, s, V = _whitened(7, SV)
    obj = DataObjective(Square(), X, Y)
    saddle = tuple(_keep(U, s, V, [1, 2], 2, np.random.default_rng(8)))
    top = tuple(_keep(U, s, V, [0, 1], 2, np.random.default_rng(8)))
    it = measure(saddle, obj, "square", 1e-6, fixed_rank_dense=0)
    assert it.fixed_rank is not None and it.fixed_rank.method == "lanczos"
    assert it.fixed_rank.min_eigenvalue == pytest.approx(_closed_form_min(s, [1, 2], 50), rel=1e-4)
    assert decide(it.evidence)[1].code == "strict.fixed_rank_negative_curvature"
    it = measure(top, obj, "square", 1e-6, fixed_rank_dense=0)
    assert it.fixed_rank is not None and it.fixed_rank.method == "lanczos"
    assert decide(it.evidence)[1].code == "inconclusive.fixed_rank_undecided"


def _ce_trained(seed: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """A 5-2-4 cross-entropy network trained by scipy on a plain numpy loss and gradient."""
    rng = np.random.default_rng(seed)
    m = 300
    X = rng.normal(size=(5, m))
    Wt = rng.normal(size=(4, 5))
    lab = np.argmax(Wt @ X + rng.gumbel(size=(4, m)), axis=0)
    Y = np.eye(4)[:, lab]
    shapes = [(2, 5), (4, 2)]

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        W1, W2 = x[:10].reshape(2, 5), x[10:].reshape(4, 2)
        Z = W2 @ W1 @ X
        P = np.exp(Z - Z.max(axis=0))
        P /= P.sum(axis=0)
        G = (P - Y) @ X.T
        return _ce_loss([W1, W2], X, Y), np.concatenate([(W2.T @ G).ravel(), (G @ W1.T).ravel()])

    res = minimize(fg, 0.3 * rng.normal(size=18), jac=True, method="BFGS", options={"gtol": 1e-11})
    for _ in range(5):  # Newton polish with the central-difference Hessian of the plain gradient
        g = fg(res.x)[1]
        H = np.array([(fg(res.x + 1e-6 * e)[1] - fg(res.x - 1e-6 * e)[1]) / 2e-6 for e in np.eye(18)])
        res.x = res.x - np.linalg.lstsq(0.5 * (H + H.T), g, rcond=1e-10)[0]
    return X, Y, [res.x[:10].reshape(shapes[0]), res.x[10:].reshape(shapes[1])]


def test_cross_entropy_bottleneck_minimum_is_a_local_minimum_not_a_certified_global_one() -> None:
    X, Y, ws = _ce_trained(12)
    cert = certify_convex(ws, DataObjective(CrossEntropy(), X, Y), loss_name="cross-entropy")
    assert cert.product_rank == cert.k == 2 and cert.relative_f_gradient > 1e-3
    assert cert.verdict == Verdict.INCONCLUSIVE and cert.rule == "inconclusive.rank_constrained_local_minimum"
    assert cert.theorem == "zhang2019.thm1" and "local minimum of the network" in cert.message
    fr = cert.fixed_rank
    assert fr is not None and fr.dimension == 2 * (5 + 3 - 2)  # on the logits' 1-perp (dy' = 3)
    # independent: the network Hessian from plain numpy loss values is PSD with exactly the
    # symmetry null space: the k^2 = 4 gauge directions and the k = 2 logit shifts W2 + 1 a^T
    lam = np.linalg.eigvalsh(_fd_hessian(lambda p: _ce_loss(p, X, Y), ws))
    scale = lam[-1]
    assert lam[0] > -1e-5 * scale
    assert int(np.sum(np.abs(lam) < 1e-5 * scale)) == 6 and lam[6] > 1e-3 * scale
    # and no random nearby point does better (plain numpy)
    rng = np.random.default_rng(13)
    base = _ce_loss(ws, X, Y)
    for _ in range(50):
        d = [1e-3 * rng.normal(size=w.shape) for w in ws]
        assert _ce_loss([w + e for w, e in zip(ws, d, strict=True)], X, Y) >= base - 1e-9


NEW = {
    "strict.fixed_rank_negative_curvature": {"fixed_rank_lambda_min": -1.0, "fixed_rank_error_bound": 1e-9,
                                             "witness_order": 2},
    "global.square_rank_constrained_minimum": {"fixed_rank_lambda_min": 1.0, "fixed_rank_error_bound": 1e-9,
                                               "fixed_rank_exact": True, "square_objective": True},
    "inconclusive.rank_constrained_local_minimum": {"fixed_rank_lambda_min": 1.0,
                                                    "fixed_rank_error_bound": 1e-9, "fixed_rank_exact": True},
    "inconclusive.fixed_rank_undecided": {"fixed_rank_lambda_min": 1e-12, "fixed_rank_error_bound": 1e-9,
                                          "fixed_rank_exact": True},
}


@pytest.mark.parametrize("code", list(NEW))
def test_new_rules_reached_from_evidence(code: str) -> None:
    from test_convex import BASE

    changes: dict[str, object] = {"no_bottleneck": False, "product_rank": 2, "k": 2, "lambda_min": None,
                                  "witness_order": None, **NEW[code]}
    ev = replace(BASE, **changes)  # type: ignore[arg-type]
    verdict, reason, theorem = decide(ev)
    assert reason.code == code
    assert verdict == next(r.verdict for r in CONVEX_RULES if r.code == code)
    assert theorem in ("zhang2019.thm1", "zhang2019.cor1")


def test_iterative_positive_curvature_is_not_a_certificate() -> None:
    from test_convex import BASE

    ev = replace(BASE, no_bottleneck=False, product_rank=2, k=2, lambda_min=None, witness_order=None,
                 fixed_rank_lambda_min=1.0, fixed_rank_error_bound=1e-9, fixed_rank_exact=False,
                 square_objective=True)
    assert decide(ev)[1].code == "inconclusive.fixed_rank_undecided"
    # negative curvature without a confirmed witness is not a saddle either
    ev = replace(ev, fixed_rank_lambda_min=-1.0)
    assert decide(ev)[1].code == "inconclusive.fixed_rank_undecided"


def test_docs_list_every_convex_rule() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "losses.md").read_text()
    assert [r.code for r in CONVEX_RULES if f"`{r.code}`" not in text] == []


@pytest.mark.parametrize("name", ["square", "logistic", "cross-entropy", "huber"])
def test_batched_hvp_equals_one_at_a_time(name: str) -> None:
    from dlcert.losses import Huber, Logistic, SampleLoss

    rng = np.random.default_rng(30)
    X = rng.normal(size=(4, 70))
    dy = 1 if name == "logistic" else 3
    Y = (rng.random((1, 70)) < 0.5).astype(float) if name == "logistic" else (
        np.eye(3)[:, rng.integers(0, 3, 70)] if name == "cross-entropy" else rng.normal(size=(3, 70)))
    table: dict[str, SampleLoss] = {"square": Square(), "logistic": Logistic(),
                                    "cross-entropy": CrossEntropy(), "huber": Huber(0.3)}
    obj = DataObjective(table[name], X, Y, chunk=16)
    R = rng.normal(size=(dy, 4))
    Ds = rng.normal(size=(5, dy, 4))
    many = obj.hvp_many(R, Ds, budget=40)  # sub-chunks of 2 or 8 samples
    np.testing.assert_allclose(many, np.stack([obj.hvp(R, D) for D in Ds]), rtol=1e-12, atol=1e-12)


def test_batched_and_callable_objectives_give_the_same_fixed_rank_spectrum() -> None:
    from dlcert.convex import fixed_rank_test
    from dlcert.losses import FunctionObjective

    X, Y, ws = _ce_trained(12)
    obj = DataObjective(CrossEntropy(), X, Y)
    same = FunctionObjective(obj.value, lambda R: obj.gradient(R)[0], obj.hvp, lambda R: obj.gradient(R)[1])
    R = ws[1] @ ws[0]
    G, scale = obj.gradient(R)
    basis = np.linalg.svd(np.eye(4) - 0.25)[0][:, :3]
    a, _ = fixed_rank_test(ws, obj, R, G, scale, 2, basis=basis)
    b, _ = fixed_rank_test(ws, same, R, G, scale, 2, basis=basis)
    assert a.min_eigenvalue == pytest.approx(b.min_eigenvalue, rel=1e-10)
    assert a.max_eigenvalue == pytest.approx(b.max_eigenvalue, rel=1e-10)


def test_a_loss_name_string_does_not_buy_cor1() -> None:
    """The same square loss as callables (no HVP: central differences) is not known to be the
    square loss: a local minimum of the rank-constrained problem, not a certified global one."""
    from dlcert.losses import FunctionObjective

    X, Y, U, s, V = _whitened(1, SV)
    T = Y @ X.T / 50
    obj = FunctionObjective(lambda R: 25.0 * float(np.sum((R - T) ** 2)), lambda R: 50.0 * (R - T))
    ws = _keep(U, s, V, [0, 1], 2, np.random.default_rng(2))
    cert = certify_convex(ws, obj, loss_name="square")
    assert cert.verdict == Verdict.INCONCLUSIVE and cert.rule == "inconclusive.rank_constrained_local_minimum"
    fr = cert.fixed_rank
    assert fr is not None and fr.min_eigenvalue is not None and fr.max_eigenvalue is not None
    assert fr.error_bound is not None and fr.error_bound >= 1e-4 * fr.max_eigenvalue
    assert fr.min_eigenvalue == pytest.approx(_closed_form_min(s, [0, 1], 50), rel=1e-6)
