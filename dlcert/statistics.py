"""Sufficient statistics of the data (SPEC §1).

Everything dlcert computes depends on the data only through ``Sxx = X X^T``, ``Syx = Y X^T``,
``syy = ||Y||_F^2`` and ``m``. Building them is the only step whose cost grows with the number
of samples; :class:`Statistics` is what every later stage receives.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dlcert.errors import InputError

FloatArray = np.ndarray


@dataclass(frozen=True)
class Statistics:
    """Sufficient statistics of a data set ``X`` (dx x m), ``Y`` (dy x m).

    Attributes
    ----------
    Sxx : (dx, dx) float64 array, ``X X^T``.
    Syx : (dy, dx) float64 array, ``Y X^T``.
    syy : float, ``||Y||_F^2``.
    m : int, number of samples.
    eps : float, machine epsilon of the coarsest floating type the data arrived in
        (tolerances follow it; 2.2e-16 for float64, 1.2e-7 for float32).
    """

    Sxx: FloatArray
    Syx: FloatArray
    syy: float
    m: int
    eps: float = field(default=float(np.finfo(np.float64).eps))

    @property
    def dx(self) -> int:
        return int(self.Sxx.shape[0])

    @property
    def dy(self) -> int:
        return int(self.Syx.shape[0])

    @classmethod
    def from_data(cls, X: FloatArray, Y: FloatArray, eps: float | None = None) -> Statistics:
        """Statistics of ``X`` (dx, m) and ``Y`` (dy, m), accumulated in float64."""
        if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
            raise InputError(
                f"X has shape {X.shape} and Y has shape {Y.shape}; expected (dx, m) and (dy, m)"
            )
        if eps is None:
            eps = max(_eps_of(X), _eps_of(Y))
        X64 = np.asarray(X, dtype=np.float64)
        Y64 = np.asarray(Y, dtype=np.float64)
        return cls(
            Sxx=X64 @ X64.T,
            Syx=Y64 @ X64.T,
            syy=float(np.einsum("ij,ij->", Y64, Y64)),
            m=int(X.shape[1]),
            eps=eps,
        )

    def require_targets(self) -> None:
        """Refuse data whose targets are all zero: every point with ``R X = 0`` is optimal."""
        if not self.syy > 0:
            raise InputError("Y is identically zero (syy = 0): there is nothing to fit")

    def __add__(self, other: Statistics) -> Statistics:
        """Statistics of the union of two disjoint sample sets (streaming accumulation)."""
        if self.Sxx.shape != other.Sxx.shape or self.Syx.shape != other.Syx.shape:
            raise InputError(
                f"cannot add statistics of shapes Sxx {self.Sxx.shape}, Syx {self.Syx.shape} "
                f"and Sxx {other.Sxx.shape}, Syx {other.Syx.shape}"
            )
        return Statistics(
            Sxx=self.Sxx + other.Sxx,
            Syx=self.Syx + other.Syx,
            syy=self.syy + other.syy,
            m=self.m + other.m,
            eps=max(self.eps, other.eps),
        )

    def scaled(self, cx: float = 1.0, cy: float = 1.0) -> Statistics:
        """Statistics of ``(cx X, cy Y)``: used to check invariance under rescaling."""
        return Statistics(
            Sxx=cx * cx * self.Sxx,
            Syx=cy * cx * self.Syx,
            syy=cy * cy * self.syy,
            m=self.m,
            eps=self.eps,
        )


def _eps_of(a: np.ndarray) -> float:
    if np.issubdtype(a.dtype, np.floating):
        return float(np.finfo(a.dtype).eps)
    return float(np.finfo(np.float64).eps)


def eps_of(*arrays: np.ndarray) -> float:
    """Machine epsilon of the coarsest floating dtype among ``arrays`` (float64 for integers)."""
    return max((_eps_of(a) for a in arrays), default=float(np.finfo(np.float64).eps))
