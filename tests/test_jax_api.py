"""JAX arrays and Flax-style parameter trees of JAX arrays through the API (when jax is installed)."""

from __future__ import annotations

import numpy as np
import pytest
from constructions import construct, random_data

import dlcert
from dlcert.certificate import Verdict
from dlcert.errors import InputError
from dlcert.statistics import Statistics

jnp = pytest.importorskip("jax.numpy")

WIDTHS = [5, 3, 2, 4]


@pytest.fixture
def problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    X, Y = random_data(rng, WIDTHS[0], WIDTHS[-1], 40)
    found = construct(rng, Statistics.from_data(X, Y), WIDTHS, [1, 2])
    assert found is not None
    return X, Y, found.weights


def test_jax_arrays_are_float32_and_certify(problem: tuple) -> None:
    X, Y, W = problem
    cert = dlcert.check([jnp.asarray(w) for w in W], jnp.asarray(X.T), jnp.asarray(Y.T), layout="rows")
    # JAX computes in float32 unless x64 is enabled: the tolerances follow float32.
    assert cert.tolerances.eps == pytest.approx(float(np.finfo(np.float32).eps))
    assert cert.verdict is Verdict.GLOBAL_MINIMUM


def test_flax_param_tree_of_jax_arrays(problem: tuple) -> None:
    X, Y, W = problem
    params = {"params": {f"Dense_{i}": {"kernel": jnp.asarray(w.T)} for i, w in enumerate(W)}}
    cert = dlcert.check(params, X, Y)
    assert cert.verdict is Verdict.GLOBAL_MINIMUM
    assert any("transposed" in r.message for r in cert.reasons)
    bf = dlcert.check({"params": {k: {"kernel": v["kernel"].astype(jnp.bfloat16)}
                                  for k, v in params["params"].items()}}, X, Y)
    assert bf.tolerances.weights_eps == 2.0**-7  # the data (float64) sets eps
    params["params"]["Dense_1"]["scale"] = jnp.ones(2)
    with pytest.raises(InputError, match=r"'Dense_1/scale' is not a Dense kernel"):
        dlcert.check(params, X, Y)
