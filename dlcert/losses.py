"""Convex losses ``f(R)`` of the end-to-end matrix, evaluated on raw samples (Zhang 2019 setting).

A :class:`SampleLoss` is a per-sample convex loss ``l(z; y)`` of the network output ``z = R x``;
:class:`DataObjective` sums it over the columns of ``X`` (dx, m) and ``Y`` (dy, m) in chunks of
``chunk`` samples (one BLAS product per chunk, never more than a chunk of ``R X`` in memory):

    f(R) = sum_j l(R x_j; y_j),   grad f(R) = sum_j g_j x_j^T,   f''(R)[D] = sum_j h_j[D x_j] x_j^T.

``square`` is ``1/2 ||z - y||^2`` (the square loss of the rest of dlcert, which keeps its own
statistics path). ``logistic`` (dy = 1, targets in [0, 1]; -1/+1 labels are read as 0/1):
``log(1 + e^z) - y z``. ``cross-entropy`` (dy >= 2, columns of Y are probability vectors, e.g.
one-hot): ``logsumexp(z) - y.z``. ``huber:DELTA`` (entrywise on ``r = z - y``): ``r^2/2`` for
``|r| <= DELTA``, else ``DELTA (|r| - DELTA/2)``.

Any other convex ``f`` can be certified through :class:`FunctionObjective` (value, gradient and
optionally a Hessian-vector product of ``f`` as callables). Nothing here prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy.special import expit, logsumexp, softmax

from dlcert.errors import InputError

DEFAULT_CHUNK = 65536


class SampleLoss(Protocol):
    """A convex per-sample loss of outputs ``Z`` (dy, c) against targets ``Y`` (dy, c)."""

    @property
    def name(self) -> str: ...

    def values(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """Per-sample losses, shape (c,)."""

    def grad(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        """``dl/dz`` per sample, shape (dy, c)."""

    def hess(self, Z: np.ndarray, Y: np.ndarray, dZ: np.ndarray) -> np.ndarray:
        """Second derivative applied to ``dZ`` per sample, shape (dy, c)."""

    def targets(self, Y: np.ndarray, source: str) -> np.ndarray:
        """Validated targets (raises :class:`InputError` with one line)."""


@dataclass(frozen=True)
class Square:
    name: str = "square"

    def values(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return 0.5 * np.sum((Z - Y) ** 2, axis=0)

    def grad(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return Z - Y

    def hess(self, Z: np.ndarray, Y: np.ndarray, dZ: np.ndarray) -> np.ndarray:
        return dZ

    def targets(self, Y: np.ndarray, source: str) -> np.ndarray:
        return Y


@dataclass(frozen=True)
class Logistic:
    name: str = "logistic"

    def values(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.sum(np.logaddexp(0.0, Z) - Y * Z, axis=0)

    def grad(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return expit(Z) - Y

    def hess(self, Z: np.ndarray, Y: np.ndarray, dZ: np.ndarray) -> np.ndarray:
        p = expit(Z)
        return p * (1.0 - p) * dZ

    def targets(self, Y: np.ndarray, source: str) -> np.ndarray:
        if Y.shape[0] != 1:
            raise InputError(
                f"{source}: the logistic loss needs one output (dy = 1); Y has {Y.shape[0]} rows")
        if np.all((Y == -1.0) | (Y == 1.0)) and np.any(Y == -1.0):
            return (Y + 1.0) / 2.0
        if np.any(Y < 0.0) or np.any(Y > 1.0):
            raise InputError(f"{source}: array Y: logistic targets must lie in [0, 1] (or be -1/+1 labels)")
        return Y


@dataclass(frozen=True)
class CrossEntropy:
    name: str = "cross-entropy"

    def values(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.asarray(logsumexp(Z, axis=0) - np.sum(Y * Z, axis=0))

    def grad(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.asarray(softmax(Z, axis=0) - Y)

    def hess(self, Z: np.ndarray, Y: np.ndarray, dZ: np.ndarray) -> np.ndarray:
        P = softmax(Z, axis=0)  # dZ may carry a leading batch axis (DataObjective.hvp_many)
        return np.asarray(P * dZ - P * np.sum(P * dZ, axis=-2, keepdims=True))

    def targets(self, Y: np.ndarray, source: str) -> np.ndarray:
        if Y.shape[0] < 2:
            raise InputError(
                f"{source}: the cross-entropy loss needs dy >= 2 classes; use --loss logistic for one output")
        if np.any(Y < 0.0) or not np.allclose(Y.sum(axis=0), 1.0, rtol=0.0, atol=1e-6):
            raise InputError(
                f"{source}: array Y: cross-entropy targets must be probability columns (non-negative, "
                "summing to 1; e.g. one-hot)")
        return Y


@dataclass(frozen=True)
class Huber:
    delta: float = 1.0
    name: str = "huber"

    def values(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        a = np.abs(Z - Y)
        d = self.delta
        return np.sum(np.where(a <= d, 0.5 * a * a, d * (a - 0.5 * d)), axis=0)

    def grad(self, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
        return np.clip(Z - Y, -self.delta, self.delta)

    def hess(self, Z: np.ndarray, Y: np.ndarray, dZ: np.ndarray) -> np.ndarray:
        return np.where(np.abs(Z - Y) < self.delta, dZ, 0.0)

    def targets(self, Y: np.ndarray, source: str) -> np.ndarray:
        return Y


def parse_loss(spec: str) -> SampleLoss:
    """``square``, ``logistic``, ``cross-entropy`` or ``huber[:DELTA]`` (one-line error otherwise)."""
    name, _, arg = spec.strip().lower().partition(":")
    if name == "huber":
        try:
            delta = float(arg) if arg else 1.0
        except ValueError:
            raise InputError(f"--loss {spec!r}: DELTA must be a number, e.g. huber:0.5") from None
        if not (0.0 < delta < np.inf):
            raise InputError(f"--loss {spec!r}: DELTA must be positive and finite")
        return Huber(delta)
    if arg:
        raise InputError(f"--loss {spec!r}: only huber takes a parameter")
    table: dict[str, SampleLoss] = {"square": Square(), "logistic": Logistic(),
                                    "cross-entropy": CrossEntropy(), "crossentropy": CrossEntropy()}
    if name not in table:
        raise InputError(f"--loss {spec!r}: expected square, logistic, cross-entropy or huber[:DELTA]")
    return table[name]


class Objective(Protocol):
    """A convex ``f`` of the end-to-end matrix R, as dlcert.convex reads it."""

    def value(self, R: np.ndarray) -> float: ...

    def gradient(self, R: np.ndarray) -> tuple[np.ndarray, float]:
        """``grad f(R)`` and the magnitude of the terms it is summed from (for a scale-free ratio)."""

    def hvp(self, R: np.ndarray, D: np.ndarray) -> np.ndarray: ...

    def decrease(self, R: np.ndarray, R2: np.ndarray) -> tuple[float, float]:
        """``f(R) - f(R2)`` evaluated stably, and a bound on its rounding error."""


@dataclass(frozen=True)
class DataObjective:
    """``f(R) = sum_j l(R x_j; y_j)`` over raw samples, in chunks of ``chunk`` columns."""

    loss: SampleLoss
    X: np.ndarray
    Y: np.ndarray
    chunk: int = DEFAULT_CHUNK

    @property
    def m(self) -> int:
        return int(self.X.shape[1])

    def _chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for s in range(0, self.m, self.chunk):
            yield self.X[:, s : s + self.chunk], self.Y[:, s : s + self.chunk]

    def value(self, R: np.ndarray) -> float:
        return float(sum(float(np.sum(self.loss.values(R @ Xc, Yc))) for Xc, Yc in self._chunks()))

    def gradient(self, R: np.ndarray) -> tuple[np.ndarray, float]:
        G = np.zeros_like(R)
        scale = 0.0
        for Xc, Yc in self._chunks():
            g = self.loss.grad(R @ Xc, Yc)
            G += g @ Xc.T
            scale += float(np.sum(np.linalg.norm(g, axis=0) * np.linalg.norm(Xc, axis=0)))
        return G, scale

    def hvp(self, R: np.ndarray, D: np.ndarray) -> np.ndarray:
        out = np.zeros_like(R)
        for Xc, Yc in self._chunks():
            out += self.loss.hess(R @ Xc, Yc, D @ Xc) @ Xc.T
        return out

    def hvp_many(self, R: np.ndarray, Ds: np.ndarray, budget: int = 1 << 22) -> np.ndarray:
        """``f''(R)[D_b]`` for a stack ``Ds`` (b, dy, dx): one GEMM per chunk for all b directions
        (sub-chunks keep ``b * dy * columns <= budget`` floats). Built-in losses only (their ``hess``
        broadcasts over a leading axis); any other loss is applied direction by direction."""
        if not isinstance(self.loss, (Square, Logistic, CrossEntropy, Huber)):
            return np.stack([self.hvp(R, D) for D in Ds])
        b, dy, dx = Ds.shape
        flat = Ds.reshape(b * dy, dx)
        out = np.zeros((b * dy, dx))
        step = max(1, min(self.chunk, budget // max(1, b * dy)))
        for s in range(0, self.m, step):
            Xc, Yc = self.X[:, s : s + step], self.Y[:, s : s + step]
            dZ = (flat @ Xc).reshape(b, dy, -1)
            out += self.loss.hess(R @ Xc, Yc, dZ).reshape(b * dy, -1) @ Xc.T
        return out.reshape(b, dy, dx)

    def decrease(self, R: np.ndarray, R2: np.ndarray) -> tuple[float, float]:
        eps = float(np.finfo(np.float64).eps)
        total = bound = 0.0
        absR = np.abs(R) + np.abs(R2)
        for Xc, Yc in self._chunks():
            Z, Z2 = R @ Xc, R2 @ Xc
            a, b = self.loss.values(Z, Yc), self.loss.values(Z2, Yc)
            total += float(np.sum(a - b))
            # rounding of the two sums, of each l, and of the products R x (|g| * |R||x| * dx eps)
            g = np.abs(self.loss.grad(Z, Yc)) + np.abs(self.loss.grad(Z2, Yc))
            spread = float(np.sum(g * (absR @ np.abs(Xc)))) * (Xc.shape[0] + 2)
            bound += 8.0 * eps * (float(np.sum(np.abs(a) + np.abs(b))) + spread)
        return total, bound


@dataclass(frozen=True)
class FunctionObjective:
    """A convex ``f`` given directly: ``value(R)``, ``gradient(R)`` and optionally ``hvp(R, D)``.

    Without ``hvp`` a central difference of ``gradient`` is used. ``scale`` (optional) is the
    magnitude the gradient is measured against; default ``|f(R)| + ||R|| ||grad f(R)||`` floored at 1.
    """

    f: Callable[[np.ndarray], float]
    grad: Callable[[np.ndarray], np.ndarray]
    hessian_vector: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None
    scale: Callable[[np.ndarray], float] | None = None

    def value(self, R: np.ndarray) -> float:
        return float(self.f(R))

    def gradient(self, R: np.ndarray) -> tuple[np.ndarray, float]:
        G = np.asarray(self.grad(R), dtype=np.float64)
        if self.scale is not None:
            return G, float(self.scale(R))
        return G, max(1.0, abs(self.value(R)), float(np.linalg.norm(R) * np.linalg.norm(G)))

    def hvp(self, R: np.ndarray, D: np.ndarray) -> np.ndarray:
        if self.hessian_vector is not None:
            return np.asarray(self.hessian_vector(R, D), dtype=np.float64)
        h = 1e-5 * max(1.0, float(np.linalg.norm(R))) / max(float(np.linalg.norm(D)), 1e-300)
        return (np.asarray(self.grad(R + h * D)) - np.asarray(self.grad(R - h * D))) / (2.0 * h)

    def decrease(self, R: np.ndarray, R2: np.ndarray) -> tuple[float, float]:
        a, b = self.value(R), self.value(R2)
        return a - b, 8.0 * float(np.finfo(np.float64).eps) * (abs(a) + abs(b))
