"""Convex losses (dlcert.losses) and their rule table (dlcert.convex), against independent oracles.

Oracles share no code with dlcert: losses written from their textbook formulas on raw samples,
complex-step / central differences, scipy.optimize on R directly, plain numpy products.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import minimize

from dlcert.certificate import Verdict
from dlcert.convex import CONVEX_RULES, ConvexEvidence, certify_convex, decide, network_hvp
from dlcert.errors import InputError
from dlcert.losses import (
    CrossEntropy,
    DataObjective,
    FunctionObjective,
    Huber,
    Logistic,
    SampleLoss,
    Square,
    parse_loss,
)


def _oracle_loss(name: str, R: np.ndarray, X: np.ndarray, Y: np.ndarray) -> complex:
    """Textbook per-sample losses summed in a Python loop (complex-safe where smooth)."""
    total: complex = 0.0
    for j in range(X.shape[1]):
        z = R @ X[:, j]
        y = Y[:, j]
        if name == "logistic":
            total += np.log(1 + np.exp(z[0])) - y[0] * z[0]
        elif name == "cross-entropy":
            total += np.log(np.sum(np.exp(z))) - np.sum(y * z)
        elif name == "square":
            total += 0.5 * np.sum((z - y) ** 2)
        else:  # huber, delta 0.7 (real only)
            r = np.abs(z - y)
            total += np.sum(np.where(r <= 0.7, 0.5 * r * r, 0.7 * (r - 0.35)))
    return total


def _problem(name: str, rng: np.random.Generator, m: int = 37) -> tuple[DataObjective, np.ndarray]:
    dx = 4
    X = rng.normal(size=(dx, m))
    if name == "logistic":
        Y = (rng.random((1, m)) < 0.5).astype(float)
    elif name == "cross-entropy":
        Y = np.eye(3)[:, rng.integers(0, 3, m)]
    else:
        Y = rng.normal(size=(2, m))
    table: dict[str, SampleLoss] = {"logistic": Logistic(), "cross-entropy": CrossEntropy(),
                                    "square": Square(), "huber": Huber(0.7)}
    loss = table[name]
    return DataObjective(loss, X, Y, chunk=10), rng.normal(size=(Y.shape[0], dx))


@pytest.mark.parametrize("name", ["logistic", "cross-entropy", "square"])
def test_gradient_and_hvp_match_complex_step(name: str) -> None:
    rng = np.random.default_rng(1)
    obj, R = _problem(name, rng)
    assert obj.value(R) == pytest.approx(_oracle_loss(name, R, obj.X, obj.Y).real, rel=1e-12)
    G, _ = obj.gradient(R)
    h = 1e-30
    for a in range(R.shape[0]):
        for b in range(R.shape[1]):
            E = np.zeros(R.shape)
            E[a, b] = 1.0
            cs = _oracle_loss(name, R + 1j * h * E, obj.X, obj.Y).imag / h
            assert G[a, b] == pytest.approx(cs, rel=1e-9, abs=1e-12)
    D = rng.normal(size=R.shape)
    # HVP against a central difference of the complex-step gradient along D
    def cs_grad(Rp: np.ndarray) -> np.ndarray:
        out = np.zeros(R.shape)
        for a in range(R.shape[0]):
            for b in range(R.shape[1]):
                E = np.zeros(R.shape)
                E[a, b] = 1.0
                out[a, b] = _oracle_loss(name, Rp + 1j * h * E, obj.X, obj.Y).imag / h
        return out
    s = 1e-5
    fd = (cs_grad(R + s * D) - cs_grad(R - s * D)) / (2 * s)
    np.testing.assert_allclose(obj.hvp(R, D), fd, rtol=1e-5, atol=1e-6)


def test_huber_gradient_central_difference() -> None:
    rng = np.random.default_rng(2)
    obj, R = _problem("huber", rng)
    G, _ = obj.gradient(R)
    s = 1e-6
    for a in range(R.shape[0]):
        for b in range(R.shape[1]):
            E = np.zeros(R.shape)
            E[a, b] = s
            up, down = _oracle_loss("huber", R + E, obj.X, obj.Y), _oracle_loss("huber", R - E, obj.X, obj.Y)
            fd = (up - down).real
            assert G[a, b] == pytest.approx(fd / (2 * s), rel=1e-5, abs=1e-6)


def test_network_hvp_matches_dense_difference_of_gradients() -> None:
    rng = np.random.default_rng(3)
    obj, _ = _problem("cross-entropy", rng)
    ws = [rng.normal(size=(3, 4)), rng.normal(size=(2, 3)), rng.normal(size=(3, 2))]
    V = [rng.normal(size=w.shape) for w in ws]

    def grads(point: list[np.ndarray]) -> list[np.ndarray]:  # plain numpy chain rule
        W1, W2, W3 = point
        G, _ = obj.gradient(W3 @ W2 @ W1)
        return [(W3 @ W2).T @ G, W3.T @ G @ W1.T, G @ (W2 @ W1).T]

    R = ws[2] @ ws[1] @ ws[0]
    s = 1e-6
    plus = grads([w + s * v for w, v in zip(ws, V, strict=True)])
    minus = grads([w - s * v for w, v in zip(ws, V, strict=True)])
    got = network_hvp(ws, obj, R, obj.gradient(R)[0], V)
    for g, p, q in zip(got, plus, minus, strict=True):
        np.testing.assert_allclose(g, (p - q) / (2 * s), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["logistic", "cross-entropy", "huber"])
def test_scipy_optimum_certified_global_without_bottleneck(name: str) -> None:
    rng = np.random.default_rng(4)
    obj, R0 = _problem(name, rng, m=60)
    if name == "logistic":  # noisy labels: not separable, the minimum is attained
        obj = replace(obj, Y=(rng.random((1, 60)) < 0.5).astype(float))
    shape = R0.shape
    res = minimize(lambda r: _oracle_loss(name, r.reshape(shape), obj.X, obj.Y).real, np.zeros(R0.size),
                   method="BFGS", options={"gtol": 1e-11, "maxiter": 5000})
    R = res.x.reshape(shape)
    res2 = minimize(lambda r: obj.value(r.reshape(shape)), R.ravel(),
                    jac=lambda r: obj.gradient(r.reshape(shape))[0].ravel(), method="BFGS",
                    options={"gtol": 1e-12})  # polish (BFGS on numeric gradients stops early)
    R = res2.x.reshape(shape)
    assert obj.value(R) <= res.fun + 1e-8
    # a deep factorisation R = W3 W2 W1 with no bottleneck (widths >= min(dx, dy))
    W1 = np.vstack([np.eye(4), np.zeros((1, 4))])
    W2 = rng.normal(size=(5, 5))
    W3 = R @ np.linalg.pinv(W2 @ W1)
    cert = certify_convex([W1, W2, W3], obj, loss_name=name, gtol=1e-6)
    assert cert.verdict == Verdict.GLOBAL_MINIMUM, cert.message
    assert cert.theorem == "zhang2019.thm3"
    # a point away from it is not critical (a constant added to every logit would not move CE)
    cert = certify_convex([W1, W2, W3 + 0.1 * rng.normal(size=W3.shape)], obj, loss_name=name)
    assert cert.verdict == Verdict.NOT_CRITICAL


def _confirm_with_numpy(obj: DataObjective, name: str, ws: list[np.ndarray],
                        point: tuple[np.ndarray, ...]) -> float:
    def prod(p: list[np.ndarray] | tuple[np.ndarray, ...]) -> np.ndarray:
        out = p[0]
        for w in p[1:]:
            out = w @ out
        return out
    before, after = _oracle_loss(name, prod(ws), obj.X, obj.Y), _oracle_loss(name, prod(point), obj.X, obj.Y)
    return float((before - after).real)


@pytest.mark.parametrize(("name", "depth", "verdict"), [
    ("logistic", 2, Verdict.STRICT_SADDLE),
    ("logistic", 3, Verdict.NON_STRICT_SADDLE),
    ("cross-entropy", 2, Verdict.STRICT_SADDLE),
])
def test_zero_weights_are_saddles_with_numpy_witness(name: str, depth: int, verdict: Verdict) -> None:
    rng = np.random.default_rng(5)
    obj, R = _problem(name, rng)
    widths = [4] + [3] * (depth - 1) + [R.shape[0]]
    ws = [np.zeros((widths[i + 1], widths[i])) for i in range(depth)]
    cert = certify_convex(ws, obj, loss_name=name)
    assert cert.verdict == verdict, cert.message
    assert cert.witness is not None
    assert _confirm_with_numpy(obj, name, ws, cert.witness.point) > 0
    assert cert.witness.order == depth


def test_rank_deficient_below_bottleneck_is_a_saddle() -> None:
    # dx = 4, dy = 3, bottleneck k = 2 < 3; R of rank 1 at a critical point (W2 W1 = 0 off one direction)
    rng = np.random.default_rng(6)
    obj, _ = _problem("cross-entropy", rng, m=50)
    # optimise a rank-one R = a b^T (a two-layer net of width 1), then embed it in width 2
    def f(p: np.ndarray) -> float:
        return obj.value(np.outer(p[:3], p[3:]))
    p = minimize(f, rng.normal(size=7), method="BFGS", options={"gtol": 1e-10}).x
    g = obj.gradient(np.outer(p[:3], p[3:]))[0]
    W1 = np.vstack([p[3:], np.zeros(4)])
    W2 = np.column_stack([p[:3], np.zeros(3)])
    cert = certify_convex([W1, W2], obj, loss_name="cross-entropy", gtol=1e-5)
    assert np.linalg.norm(g) > 1e-3
    assert cert.product_rank == 1 and cert.k == 2
    assert cert.verdict == Verdict.STRICT_SADDLE, cert.message
    assert cert.theorem == "zhang2019.lemma1"
    assert cert.witness is not None
    assert _confirm_with_numpy(obj, "cross-entropy", [W1, W2], cert.witness.point) > 0


def test_separable_logistic_has_no_minimum() -> None:
    rng = np.random.default_rng(7)
    X = rng.normal(size=(3, 40))
    Y = (X[0] > 0).astype(float)[None]
    obj = DataObjective(Logistic(), X, Y)
    cert = certify_convex([np.eye(3), np.array([[4.0, 0, 0]])], obj, loss_name="logistic")
    assert cert.attained is False
    assert cert.rule == "not_critical.infimum_not_attained"


def test_function_objective_quadratic() -> None:
    C = np.array([[1.0, 2.0]])
    obj = FunctionObjective(lambda R: 0.5 * float(np.sum((R - C) ** 2)), lambda R: R - C)
    cert = certify_convex([np.array([[1.0, 0.0], [0.0, 1.0]]), C], obj)
    assert cert.verdict == Verdict.GLOBAL_MINIMUM


@pytest.mark.parametrize("spec", ["hinge", "huber:-1", "huber:x", "logistic:2"])
def test_parse_loss_rejects(spec: str) -> None:
    with pytest.raises(InputError, match="--loss"):
        parse_loss(spec)


def test_targets_rejected() -> None:
    with pytest.raises(InputError, match="logistic"):
        Logistic().targets(np.zeros((2, 3)), "d.npz")
    with pytest.raises(InputError, match="probability"):
        CrossEntropy().targets(np.full((2, 3), 0.2), "d.npz")


BASE = ConvexEvidence(relative_gradient=0.0, relative_f_gradient=0.5, gtol=1e-6, no_bottleneck=True,
                      product_rank=0, k=1, rank_ambiguous=False, attained=True, witness_order=2,
                      lambda_min=-1.0, curvature_threshold=1e-9, hessian_zero=False)


@pytest.mark.parametrize(("changes", "code"), [
    ({"relative_gradient": 1.0, "attained": False}, "not_critical.infimum_not_attained"),
    ({"relative_gradient": 1.0}, "not_critical.gradient"),
    ({"relative_f_gradient": 1e-9}, "global.convex_stationary"),
    ({"relative_f_gradient": 1e-5}, "inconclusive.near_stationary"),
    ({"rank_ambiguous": True}, "inconclusive.rank_ambiguous"),
    ({"witness_order": None}, "inconclusive.witness_not_confirmed"),
    ({}, "strict.negative_curvature"),
    ({"lambda_min": 0.0, "hessian_zero": True, "witness_order": 3}, "non_strict.zero_hessian"),
    ({"lambda_min": 0.0, "witness_order": 3}, "inconclusive.strictness_undecided"),
    ({"no_bottleneck": False, "product_rank": 2, "k": 2}, "strict.bottleneck_negative_curvature"),
    ({"no_bottleneck": False, "product_rank": 2, "k": 2, "lambda_min": 0.0},
     "inconclusive.bottleneck_full_rank"),
])
def test_every_rule_reached(changes: dict[str, object], code: str) -> None:
    verdict, reason, _ = decide(replace(BASE, **changes))  # type: ignore[arg-type]
    assert reason.code == code
    assert verdict == next(r.verdict for r in CONVEX_RULES if r.code == code)


def test_every_rule_has_a_test() -> None:
    codes = {r.code for r in CONVEX_RULES}
    assert len(codes) == len(CONVEX_RULES) == 15  # the fixed-rank rules: tests/test_fixed_rank.py


def _square_rank_one_points(seed: int) -> tuple[DataObjective, list[list[np.ndarray]]]:
    """Square loss with X X^T = m I: the width-1 critical points R = u_i u_i^T Y X^T / m."""
    rng = np.random.default_rng(seed)
    m, dx, dy = 40, 4, 3
    Q, _ = np.linalg.qr(rng.normal(size=(m, dx)))
    X = np.sqrt(m) * Q.T
    Y = rng.normal(size=(dy, m))
    U = np.linalg.svd(Y @ X.T)[0]
    points = [[(U[:, i] @ (Y @ X.T) / m)[None, :], U[:, i][:, None]] for i in range(2)]
    return DataObjective(Square(), X, Y), points


def test_bottleneck_full_rank_saddle_and_minimum() -> None:
    """Rank R = k = 1 with grad f != 0: the fixed-rank test decides (more in test_fixed_rank.py)."""
    obj, (top, second) = _square_rank_one_points(8)
    cert = certify_convex(second, obj, loss_name="square")
    assert cert.product_rank == cert.k == 1 and not cert.no_bottleneck
    assert cert.verdict == Verdict.STRICT_SADDLE and cert.rule == "strict.fixed_rank_negative_curvature"
    assert cert.witness is not None
    assert _confirm_with_numpy(obj, "square", second, cert.witness.point) > 0
    cert = certify_convex(top, obj, loss_name="square")  # the rank-1 optimum: grad f != 0, no escape
    assert cert.rule == "global.square_rank_constrained_minimum"
    assert cert.fixed_rank is not None and cert.fixed_rank.min_eigenvalue is not None
    assert cert.fixed_rank.min_eigenvalue > 0


def test_lanczos_path_finds_the_same_negative_curvature() -> None:
    from dlcert.convex import measure
    rng = np.random.default_rng(9)
    obj, _ = _problem("cross-entropy", rng)
    ws = (np.zeros((1, 4)), np.zeros((3, 1)))  # rank 0 < k = 1: the network Hessian is computed
    dense = measure(ws, obj, "cross-entropy", 1e-6)
    iterative = measure(ws, obj, "cross-entropy", 1e-6, dense_params=0)
    assert dense.hessian_method == "dense" and iterative.hessian_method == "lanczos"
    assert dense.evidence.lambda_min is not None and iterative.evidence.lambda_min is not None
    assert dense.evidence.lambda_min < 0
    assert iterative.evidence.lambda_min == pytest.approx(dense.evidence.lambda_min, rel=1e-5)


@pytest.mark.parametrize("alive", [0, 1, 2])
def test_one_live_layer_in_four_is_non_strict(alive: int) -> None:
    """N = 4 with one non-zero layer: the Hessian is exactly zero; an order >= 3 routed escape."""
    rng = np.random.default_rng(10)
    obj, _ = _problem("logistic", rng, m=60)
    ws = [np.zeros((3, 4)), np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((1, 3))]
    ws[alive] = rng.normal(size=ws[alive].shape)
    cert = certify_convex(ws, obj, loss_name="logistic")
    assert cert.verdict == Verdict.NON_STRICT_SADDLE, cert.message
    assert cert.hessian["exactly_zero"] is True
    assert cert.witness is not None and cert.witness.order >= 3
    assert _confirm_with_numpy(obj, "logistic", ws, cert.witness.point) > 0


def test_distance_bound_square_and_cross_entropy() -> None:
    rng = np.random.default_rng(11)
    X, Y = rng.normal(size=(3, 40)), rng.normal(size=(2, 40))
    Rstar = Y @ X.T @ np.linalg.inv(X @ X.T)
    R = Rstar + 1e-9 * rng.normal(size=Rstar.shape)
    cert = certify_convex([np.eye(3), R], DataObjective(Square(), X, Y), loss_name="square", gtol=1e-6)
    assert cert.verdict == Verdict.GLOBAL_MINIMUM
    assert cert.distance_bound is not None
    assert np.linalg.norm(R - Rstar) <= cert.distance_bound * (1 + 1e-6)
    obj, _ = _problem("cross-entropy", rng)
    res = minimize(lambda r: obj.value(r.reshape(3, 4)), np.zeros(12),
                   jac=lambda r: obj.gradient(r.reshape(3, 4))[0].ravel(), method="BFGS",
                   options={"gtol": 1e-12})
    cert = certify_convex([np.eye(4), res.x.reshape(3, 4)], obj, loss_name="cross-entropy")
    assert cert.verdict == Verdict.GLOBAL_MINIMUM
    assert cert.distance_bound is None
    assert any(r.code == "note.not_strongly_convex" for r in cert.reasons)
