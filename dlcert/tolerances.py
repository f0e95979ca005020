"""Default tolerances, derived from the precision the inputs arrived in.

All tolerances are relative, so a verdict does not change when X, Y or the weights are
rescaled consistently. The precision of the data and the precision of the weights are different
things and enter in different places. With ``eps`` the machine epsilon of the data (2.2e-16 for
float64, 1.2e-7 for float32), ``eps_w`` that of the stored weights (bfloat16 7.8e-3, float16
9.8e-4) and ``d`` the largest width:

* ``gtol = 10 sqrt(eps)`` bounds the relative gradient norm (``dlcert.objective`` doc):
  1.5e-7 for float64, 3.5e-3 for float32. Rounding the weights of an exact critical point
  to the input precision moves the gradient by about ``eps`` times the conditioning of the
  products, so the bound sits well above that and far below the O(1) values of a point that
  is not critical.
* ``ftol = 10 eps^(3/4)`` bounds ``gap / (syy/2)``: 1.8e-11 for float64, 6.4e-5 for float32.
  The gap is second order in the distance to the optimum, so it is far smaller than gtol.
* ``rank_rtol = 100 d eps`` is the relative singular-value cutoff for numerical ranks of the
  data (numpy's ``matrix_rank`` default is ``d eps``; products of several factors and float32
  storage need headroom).
* ``product_rank_rtol`` is the cutoff for ranks of the weights and their products: ``rank_rtol``,
  raised to ``N eps_w`` when the weights are stored coarser than the data (rounding each of N
  factors by a relative ``eps_w / 2`` moves their product by about ``N eps_w / 2`` of its scale;
  ``100 d eps_w`` would call every bfloat16 product rank 0).
* The stored weights' precision enters as floors, not as defaults: ``gradient_floor = eps_w
  kappa`` and ``value_floor`` (``dlcert.evidence``) raise ``gtol`` and ``ftol`` by what rounding
  an exact critical point to ``eps_w`` can cause, no further than ``GTOL_CEILING`` and
  ``FTOL_CEILING`` (a relative gradient or gap between a ceiling and its floor is
  ``inconclusive``: rounding may explain it, but a tolerance that large would pass anything).
  A gradient computed in float64 from bfloat16-stored weights is not a bfloat16 computation, so
  the default ``gtol`` itself never grows with ``eps_w``.
* ``hessian_rtol = max(100 d sqrt(N) eps_64, 10 max(rho, gradient_floor))`` with ``rho`` the
  measured relative gradient: curvature below ``-hessian_rtol * |lambda_max|`` counts as
  negative. A point whose relative gradient is rho (weights rounded to float32, say) can show
  negative curvature of about that relative size next to the symmetry directions, so nothing
  smaller is evidence. Negative
  curvature found along a structured direction is judged more finely, by the exact loss
  polynomial and its rounding bound (``dlcert.witness``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from dlcert.certificate import Tolerances

#: Machine epsilon of float64, the precision every computation runs in.
EPS64 = float(np.finfo(np.float64).eps)

#: Relative eigenvalue cutoff of Sxx for whitening. Eigenvalues of the float64 statistics are
#: accurate to a few eps * lambda_max; directions below the cutoff are treated as absent and
#: whatever Y could hold in them is counted as uncertainty of L* (``Whitening.dropped_signal``).
SXX_RTOL = 100.0 * EPS64

#: The stored precision (``gradient_floor``) raises gtol up to this and no further: a relative
#: gradient between this and the floor is ``inconclusive`` rather than certified by a tolerance
#: that would pass almost anything.
GTOL_CEILING = 1e-2

#: The value floor raises ftol up to this and no further (the gap is second order in the
#: distance to the optimum, so this is about ``GTOL_CEILING ** 2``): a gap between this and the
#: value floor is ``inconclusive``.
FTOL_CEILING = 1e-4

#: Above this channel noise (the gradient floor of an ill-conditioned change of basis between
#: layers, which also shrinks measured channel strengths), "no channel" proves nothing.
CHANNEL_NOISE_CEILING = 1e-8

#: The arithmetic error bound of the gap is ``GAP_GAMMA * N * eps`` times the products' scale.
GAP_GAMMA = 4.0

#: Widths up to which the product behind the gap is formed in extended precision when the
#: a-priori bound decides nothing (numpy's ``longdouble`` products do not use BLAS).
EXTENDED_MAX_WIDTH = 300

#: Error bound of a dense eigenvalue: ``DENSE_EIG_GAMMA * sqrt(n) * eps * max |lambda|``.
DENSE_EIG_GAMMA = 10.0


def default_tolerances(
    eps: float,
    widths: list[int],
    gtol: float | None = None,
    ftol: float | None = None,
    weights_eps: float | None = None,
) -> Tolerances:
    """Tolerances for data of machine epsilon ``eps`` and weights stored at ``weights_eps``
    (default: ``eps``); ``gtol``/``ftol`` override (module docstring)."""
    d = max(widths)
    n = len(widths) - 1
    w_eps = eps if weights_eps is None else weights_eps
    rank_rtol = 100.0 * d * eps
    g = gtol if gtol is not None else 10.0 * math.sqrt(eps)
    return Tolerances(
        gtol=g,
        ftol=ftol if ftol is not None else 10.0 * eps**0.75,
        rank_rtol=rank_rtol,
        hessian_rtol=100.0 * d * math.sqrt(n) * EPS64,
        eps=eps,
        gtol_requested=g,
        gradient_floor=0.0,
        ftol_requested=ftol if ftol is not None else 10.0 * eps**0.75,
        weights_eps=w_eps,
        product_rank_rtol=max(rank_rtol, n * w_eps) if w_eps > eps else rank_rtol,
    )


def with_gradient_floor(tol: Tolerances, floor: float, rho: float, value_floor: float = 0.0) -> Tolerances:
    """``tol`` with ``gtol = max(gtol_requested, min(floor, GTOL_CEILING))``,
    ``ftol = max(ftol_requested, min(value_floor, FTOL_CEILING))`` and the Hessian tolerance
    following the measured relative gradient ``rho`` (module docstring; the floors are what
    rounding the stored weights can cause)."""
    g = max(tol.gtol_requested, min(floor, GTOL_CEILING))
    f = max(tol.ftol_requested or tol.ftol, min(value_floor, FTOL_CEILING))
    h = max(tol.hessian_rtol, 10.0 * max(rho, floor)) if math.isfinite(rho) else tol.hessian_rtol
    return replace(
        tol, gtol=g, ftol=f, hessian_rtol=h, gradient_floor=floor,
        ftol_requested=tol.ftol_requested or tol.ftol, value_floor=value_floor,
    )
