"""Constructed critical points whose class is known independently of dlcert's rules.

A critical point for index set S (SPEC §3/§4): ``R = U_S U_S^T T S^{-1}`` carried by a
"signal" block of r = |S| coordinates in every hidden layer, plus "junk" maps on the remaining
hidden coordinates (input map K_1, hidden maps J_i, output map K_N), each zero or random. The
junk never reaches R when its product vanishes; criticality is then checked numerically and
non-critical draws are rejected. Random invertible changes of basis ``W_i -> G_i W_i G_{i-1}^{-1}``
keep the class. The class oracle is the value (S top set or not) and the dense Hessian.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dlcert.objective import PointCache, gradient, relative_gradient_norms
from dlcert.optimum import Whitening, whiten
from dlcert.statistics import Statistics


def random_data(rng: np.random.Generator, dx: int, dy: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Data with a well-separated spectrum of Sigma (generic, full rank)."""
    X = rng.standard_normal((dx, m))
    A = rng.standard_normal((dy, dx))
    Y = A @ X + 0.3 * rng.standard_normal((dy, m))
    return X, Y


@dataclass
class Constructed:
    weights: list[np.ndarray]
    index_set: tuple[int, ...]
    junk: tuple[bool, ...]


def signal_weights(wh: Whitening, widths: Sequence[int], index_set: Sequence[int]) -> list[np.ndarray]:
    """Balanced factorisation of ``U_S U_S^T T S^{-1}`` on the first r hidden coordinates."""
    n = len(widths) - 1
    idx = [i - 1 for i in index_set]
    r = len(idx)
    root = wh.s[idx] ** (1.0 / n) if r else np.zeros(0)
    US = wh.U[:, idx]
    VS = wh.Vt[idx].T
    weights = []
    for i in range(1, n + 1):
        W = np.zeros((widths[i], widths[i - 1]))
        if r:
            if n == 1:
                W = (US * wh.s[idx]) @ VS.T @ wh.S_pinv
            elif i == 1:
                W[:r, :] = root[:, None] * (VS.T @ wh.S_pinv)
            elif i == n:
                W[:, :r] = US * root
            else:
                W[np.arange(r), np.arange(r)] = root
        weights.append(W)
    return weights


def construct(
    rng: np.random.Generator,
    stats: Statistics,
    widths: Sequence[int],
    index_set: Sequence[int],
    junk: Sequence[bool] | None = None,
    basis_change: bool = True,
    tries: int = 50,
) -> Constructed | None:
    """A critical point with learned set ``index_set``; ``junk[i]`` turns junk map i on.

    junk has N entries: junk[0] = K_1 (input -> junk_1), junk[i] = J_{i+1}, junk[N-1] = K_N.
    Returns None if no critical draw was found.
    """
    wh = whiten(stats, 1e-13)
    n = len(widths) - 1
    r = len(index_set)
    for _ in range(tries):
        pattern = tuple(junk) if junk is not None else tuple(bool(b) for b in rng.integers(0, 2, n))
        W = signal_weights(wh, widths, index_set)
        if n >= 2:
            for i in range(n):
                if not pattern[i]:
                    continue
                rows = slice(r, None) if i < n - 1 else slice(None)
                cols = slice(r, None) if i > 0 else slice(None)
                block = W[i][rows, cols]
                if block.size:
                    W[i][rows, cols] = rng.standard_normal(block.shape)
        if basis_change and n >= 2:
            G = [np.eye(widths[0])] + [
                np.eye(widths[i]) + 0.5 * rng.standard_normal((widths[i], widths[i])) / np.sqrt(widths[i])
                for i in range(1, n)
            ] + [np.eye(widths[-1])]
            W = [G[i + 1] @ W[i] @ np.linalg.inv(G[i]) for i in range(n)]
        cache = PointCache.at(W, stats)
        rel = relative_gradient_norms(cache, gradient(W, stats, cache), stats)
        if max(rel) < 1e-11:
            return Constructed(W, tuple(index_set), pattern)
        if junk is not None:
            return None
    return None
