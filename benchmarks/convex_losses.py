"""Beyond the square loss: train and certify bias-free deep linear classifiers and a residual stack.

Run: ``.venv/bin/python benchmarks/convex_losses.py [--m 20000]``. Prints one line per case
(verdict, rule, theorem, seconds) and the HVP cost per sample relative to one pass of f over
the data. Training uses scipy's L-BFGS on the network parameters (plain numpy chain rule).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize

from dlcert.certification import certify
from dlcert.convex import certify_convex
from dlcert.losses import CrossEntropy, DataObjective, Logistic
from dlcert.statistics import Statistics
from dlcert.theorems import yun_cor23


def train(obj: DataObjective, widths: Sequence[int], seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    shapes = [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
    sizes = [a * b for a, b in shapes]

    def unpack(p: np.ndarray) -> list[np.ndarray]:
        out, s = [], 0
        for shape, n in zip(shapes, sizes, strict=True):
            out.append(p[s:s + n].reshape(shape))
            s += n
        return out

    def fun(p: np.ndarray) -> tuple[float, np.ndarray]:
        ws = unpack(p)
        below = [np.eye(widths[0])]
        for w in ws:
            below.append(w @ below[-1])
        R = below[-1]
        G, _ = obj.gradient(R)
        above = np.eye(widths[-1])
        grads = [np.zeros(0)] * len(ws)
        for i in range(len(ws) - 1, -1, -1):
            grads[i] = (above.T @ G @ below[i].T).ravel()
            above = above @ ws[i]
        return obj.value(R), np.concatenate(grads)

    p0 = 0.3 * rng.normal(size=sum(sizes))
    res = minimize(fun, p0, jac=True, method="L-BFGS-B",
                   options={"maxiter": 20000, "gtol": 1e-13, "ftol": 1e-16, "maxcor": 30})
    return unpack(res.x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--m", type=int, default=20000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    m, dx = args.m, 8
    X = rng.normal(size=(dx, m))
    w_true = rng.normal(size=dx)
    y = (rng.random(m) < 1 / (1 + np.exp(-X.T @ w_true))).astype(float)[None]  # noisy: not separable
    cases = []
    obj = DataObjective(Logistic(), X, y, chunk=4096)
    cases.append(("logistic, widths 8-6-4-1, trained", obj, train(obj, [dx, 6, 4, 1], 1), "logistic"))
    W3 = rng.normal(size=(3, dx))
    labels = np.array([rng.choice(3, p=np.exp(z) / np.exp(z).sum()) for z in (W3 @ X).T])
    Yc = np.eye(3)[:, labels]
    obj_ce = DataObjective(CrossEntropy(), X, Yc, chunk=4096)
    trained_ce = train(obj_ce, [dx, 5, 3], 2)
    cases.append(("cross-entropy, widths 8-5-3, trained", obj_ce, trained_ce, "cross-entropy"))
    zeros = [np.zeros((4, dx)), np.zeros((4, 4)), np.zeros((1, 4))]
    cases.append(("logistic, zero weights 8-4-4-1", obj, zeros, "logistic"))
    ysep = (X[0] > 0).astype(float)[None]
    obj_sep = DataObjective(Logistic(), X[:, :2000], ysep[:, :2000])
    cases.append(("logistic, separable data, trained", obj_sep, train(obj_sep, [dx, 4, 1], 3), "logistic"))
    for name, o, ws, loss in cases:
        t0 = time.perf_counter()
        c = certify_convex(ws, o, loss_name=loss)
        dt = time.perf_counter() - t0
        print(f"{name}: {c.verdict.value} [{c.rule}] theorem {c.theorem}; relative grad f "
              f"{c.relative_f_gradient:.2e}, network {c.relative_gradient_norm:.2e}; attained {c.attained}; "
              f"{dt:.2f} s (m = {o.m})")
    # residual stack (square loss): A_i small, trained from Y = M X + noise
    d = 6
    Xr = rng.normal(size=(d, m))
    M = np.eye(d) + 0.3 * rng.normal(size=(d, d))
    Yr = M @ Xr + 0.1 * rng.normal(size=(d, m))
    stats = Statistics.from_data(Xr, Yr)
    R = stats.Syx @ np.linalg.inv(stats.Sxx)
    # spread log(R) over 4 layers: (I + A)^4 = R with A = R^(1/4) - I
    ev, V = np.linalg.eig(R)
    A = np.real(V @ np.diag(ev ** 0.25) @ np.linalg.inv(V)) - np.eye(d)
    As = [A] * 4
    t0 = time.perf_counter()
    cert = certify([np.eye(d) + a for a in As], stats)
    row = yun_cor23(As, cert.tolerances.rank_rtol)
    dt = time.perf_counter() - t0
    print(f"residual stack 4 x {d}x{d} (square): {cert.verdict.value} [{cert.rule}]; yun2018.cor2.3 "
          f"applies {row.applies} holds {row.holds} max sigma_max(A_i) {row.evidence['max_sigma_max']:.3f}; "
          f"{dt:.2f} s")
    # HVP cost per sample relative to one pass of f
    Rl = cases[0][2][-1]
    for w in reversed(cases[0][2][:-1]):
        Rl = Rl @ w
    D = rng.normal(size=Rl.shape)
    t0 = time.perf_counter()
    obj.value(Rl)
    tv = time.perf_counter() - t0
    t0 = time.perf_counter()
    obj.hvp(Rl, D)
    th = time.perf_counter() - t0
    print(f"HVP of f: {th / m * 1e9:.1f} ns/sample, {th / tv:.2f} x one pass of f (m = {m})")


if __name__ == "__main__":
    main()
