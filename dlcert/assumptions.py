"""Facts about the data and the architecture that the theorems assume (SPEC §5).

Everything is measured from the statistics and the widths alone, with the numbers kept so the
report can show them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dlcert.optimum import Whitening
from dlcert.products import numerical_rank
from dlcert.statistics import Statistics
from dlcert.strictness import TIE_RTOL, sigma_rank


@dataclass(frozen=True)
class Assumptions:
    """Measured assumptions.

    widths, k (= min width), bottleneck_layers (hidden i with d_i = k), n_layers (N).
    sxx_rank, sxx_condition : numerical rank and condition number of Sxx.
    syx_rank : numerical rank of Syx; sigma_rank : rank of Sigma (= rank T).
    dy_le_dx : dy <= dx.
    x_full_row_rank : rank X = dx (Sxx invertible).
    y_full_row_rank : True if rank Syx = dy (then rank Y = dy); ``None`` when the statistics
        cannot tell (rank Y is not a function of Sxx, Syx, syy).
    sigma_min_relative_gap : min over i of ``(lambda_i - lambda_{i+1}) / lambda_1`` among the
        eigenvalues ``lambda_i = s_i^2`` of Sigma (1.0 when there is a single one).
    sigma_distinct : that gap exceeds the exact-tie level.
    k_gap : ``(s_k^2 - s_{k+1}^2) / s_1^2`` (``None`` when there is no s_{k+1}).
    k_effective : ``min(k, rank Sigma)``.
    """

    widths: list[int]
    k: int
    bottleneck_layers: list[int]
    n_layers: int
    sxx_rank: int
    sxx_condition: float
    syx_rank: int
    sigma_rank: int
    dy_le_dx: bool
    x_full_row_rank: bool
    y_full_row_rank: bool | None
    sigma_min_relative_gap: float
    sigma_distinct: bool
    k_gap: float | None
    k_effective: int

    @property
    def dx(self) -> int:
        return self.widths[0]

    @property
    def dy(self) -> int:
        return self.widths[-1]

    @property
    def kawaguchi(self) -> bool:
        """Kawaguchi 2016 Thm 2.3: XX^T, XY^T full rank, dy <= dx, Sigma distinct."""
        return (
            self.x_full_row_rank
            and self.syx_rank == min(self.dx, self.dy)
            and self.dy_le_dx
            and self.sigma_distinct
        )

    @property
    def yun(self) -> bool:
        """Yun et al. 2018 assumptions: XX^T and YX^T full rank."""
        return self.x_full_row_rank and self.syx_rank == min(self.dx, self.dy)


def measure_assumptions(
    stats: Statistics, wh: Whitening, widths: list[int], rank_rtol: float
) -> Assumptions:
    """Measure every assumption of SPEC §5 for these statistics and widths."""
    n = len(widths) - 1
    k = min(widths)
    dx, dy = widths[0], widths[-1]
    syx_rank = numerical_rank(stats.Syx, rank_rtol).rank
    lam = wh.s**2
    if lam.size >= 2 and lam[0] > 0:
        rel = float(np.min(lam[:-1] - lam[1:]) / lam[0])
    else:
        rel = 1.0
    k_gap = float((lam[k - 1] - lam[k]) / lam[0]) if k < lam.size and lam[0] > 0 else None
    srank = sigma_rank(wh, rank_rtol)
    return Assumptions(
        widths=list(widths),
        k=k,
        bottleneck_layers=[i for i in range(1, n) if widths[i] == k],
        n_layers=n,
        sxx_rank=wh.sxx_rank,
        sxx_condition=wh.sxx_condition,
        syx_rank=syx_rank,
        sigma_rank=srank,
        dy_le_dx=dy <= dx,
        x_full_row_rank=wh.sxx_rank == dx,
        y_full_row_rank=True if syx_rank == dy else None,
        sigma_min_relative_gap=rel,
        sigma_distinct=rel > TIE_RTOL,
        k_gap=k_gap,
        k_effective=min(k, srank),
    )
