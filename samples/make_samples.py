"""Write the sample cases of samples/README.md (fixed seed): one per verdict, and a float32 one.

Run from the repository root: ``python samples/make_samples.py`` (or ``make samples``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dlcert.optimum import balanced_factorization, optimal_product, whiten
from dlcert.statistics import Statistics

HERE = Path(__file__).resolve().parent
SEED = 20261122


def data(rng: np.random.Generator, dx: int, dy: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    X = rng.standard_normal((dx, m))
    Y = rng.standard_normal((dy, dx)) @ X + 0.3 * rng.standard_normal((dy, m))
    return X, Y


def optimum(X: np.ndarray, Y: np.ndarray, widths: list[int]) -> list[np.ndarray]:
    wh = whiten(Statistics.from_data(X, Y), 1e-13)
    return balanced_factorization(optimal_product(wh, min(widths)), widths)


def learned(X: np.ndarray, Y: np.ndarray, widths: list[int], index_set: list[int]) -> list[np.ndarray]:
    """Critical point that learned the singular directions ``index_set`` (1-based)."""
    wh = whiten(Statistics.from_data(X, Y), 1e-13)
    idx = [i - 1 for i in index_set]
    R = wh.U[:, idx] @ wh.U[:, idx].T @ wh.T @ wh.S_pinv
    return balanced_factorization(R, widths)


def save(name: str, weights: list[np.ndarray], X: np.ndarray, Y: np.ndarray, **kw: str) -> None:
    arrays = {f"W{i + 1}": w for i, w in enumerate(weights)} | {"X": X, "Y": Y}
    np.savez(HERE / f"{name}.npz", **arrays)


def main() -> None:
    rng = np.random.default_rng(SEED)
    X, Y = data(rng, 4, 3, 50)
    save("global_full_rank", optimum(X, Y, [4, 5, 3]), X, Y)
    X, Y = data(rng, 5, 4, 60)
    save("global_bottleneck", optimum(X, Y, [5, 2, 3, 4]), X, Y)
    X, Y = data(rng, 4, 3, 50)
    save("strict_saddle", learned(X, Y, [4, 3, 3], [2]), X, Y)
    X, Y = data(rng, 3, 3, 40)
    save("non_strict_saddle", [np.zeros((2, 3)), np.zeros((2, 2)), np.zeros((3, 2))], X, Y)
    X, Y = data(rng, 4, 3, 50)
    save("not_critical", [rng.standard_normal((3, 4)), rng.standard_normal((3, 3))], X, Y)
    # The PyTorch habit: float32 everywhere, samples as rows (m, d).
    X, Y = data(rng, 6, 2, 80)
    W = [w.astype(np.float32) for w in optimum(X, Y, [6, 4, 2])]
    save("global_float32_rows", W, X.T.astype(np.float32), Y.T.astype(np.float32))


if __name__ == "__main__":
    main()
