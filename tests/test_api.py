"""The notebook API (dlcert.api) on numpy inputs: same answers as the library, same errors."""

from __future__ import annotations

import json
from dataclasses import replace
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from constructions import construct, random_data
from rich.console import Console

import dlcert
from dlcert import certify
from dlcert.api import loss_summary
from dlcert.certificate import Verdict
from dlcert.errors import InputError
from dlcert.io import save_weights
from dlcert.render.notebook import certificate_html, certificate_rich
from dlcert.statistics import Statistics

WIDTHS = [5, 3, 2, 4]


@pytest.fixture
def problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Data (columns), a global minimum (S = {1, 2}) and a strict saddle (S = {2})."""
    X, Y = random_data(rng, WIDTHS[0], WIDTHS[-1], 40)
    stats = Statistics.from_data(X, Y)
    glob = construct(rng, stats, WIDTHS, [1, 2])
    saddle = construct(rng, stats, WIDTHS, [2], junk=[False, False, False])
    assert glob is not None and saddle is not None
    return X, Y, glob.weights, saddle.weights


def test_check_matches_certify_in_both_layouts(problem: tuple) -> None:
    X, Y, W, _ = problem
    ref = certify(W, Statistics.from_data(X, Y))
    assert ref.verdict is Verdict.GLOBAL_MINIMUM
    for args, layout in (((X, Y), None), ((X.T, Y.T), "rows"), ((X.T.tolist(), Y.T.tolist()), "rows")):
        cert = dlcert.check(W, *args, layout=layout)
        assert cert.verdict is ref.verdict
        assert cert.loss == pytest.approx(ref.loss, rel=1e-12)
        assert cert.relative_gap == pytest.approx(ref.relative_gap, rel=1e-6, abs=1e-15)


def test_check_accepts_statistics_and_a_stats_dict(problem: tuple) -> None:
    X, Y, W, _ = problem
    stats = Statistics.from_data(X, Y)
    a = dlcert.check(W, stats=stats)
    b = dlcert.check(W, stats={"Sxx": stats.Sxx, "Syx": stats.Syx, "syy": stats.syy, "m": stats.m})
    assert a.verdict is b.verdict is Verdict.GLOBAL_MINIMUM
    assert a.loss == b.loss


def test_precisions_of_weights_and_data_are_recorded_apart(problem: tuple) -> None:
    """The data's dtype sets the tolerances; the weights' dtype only their floors."""
    X, Y, W, _ = problem
    f32, f64 = float(np.finfo(np.float32).eps), float(np.finfo(np.float64).eps)
    cert = dlcert.check([w.astype(np.float32) for w in W], X, Y)
    assert (cert.tolerances.eps, cert.tolerances.weights_eps) == (f64, f32)
    assert cert.tolerances.gtol_requested == pytest.approx(10 * f64**0.5)
    cert = dlcert.check(W, X.astype(np.float32), Y.astype(np.float32))
    assert (cert.tolerances.eps, cert.tolerances.weights_eps) == (f32, f64)
    assert cert.tolerances.gtol_requested == pytest.approx(10 * f32**0.5)
    cert = dlcert.check(W, X, Y)
    assert (cert.tolerances.eps, cert.tolerances.weights_eps) == (f64, f64)


@pytest.mark.parametrize(
    ("mutate", "pattern"),
    [
        (lambda X, Y, W: (X, Y, [W[0], W[1][:, :2], W[2]]),
         r"^W2 has 2 columns but W1 has 3 rows"),
        (lambda X, Y, W: (np.where(np.arange(X.size).reshape(X.shape) == 7, np.nan, X), Y, W),
         r"^X has 1 non-finite value\(s\) \(1 NaN, 0 Inf\)"),
        (lambda X, Y, W: (X, Y.astype(complex), W), r"^Y has dtype complex128 \(a complex dtype"),
        (lambda X, Y, W: (X[:4], Y, W), r"^X has shape \(4, 40\) but W1 takes dx = 5 inputs"),
        (lambda X, Y, W: (X, Y, "weights.npz"), r"^weights is a str; expected a list of weight"),
    ],
)
def test_bad_input_gives_the_validators_one_line(problem: tuple, mutate, pattern: str) -> None:  # type: ignore[no-untyped-def]
    X, Y, W, _ = problem
    X2, Y2, W2 = mutate(X, Y, W)
    with pytest.raises(InputError, match=pattern) as info:
        dlcert.check(W2, X2, Y2)
    assert "\n" not in str(info.value)


def test_missing_or_doubled_data_and_bad_tolerances(problem: tuple) -> None:
    X, Y, W, _ = problem
    with pytest.raises(InputError, match="no data"):
        dlcert.check(W)
    with pytest.raises(InputError, match="Y is missing"):
        dlcert.check(W, X)
    with pytest.raises(InputError, match="not both"):
        dlcert.check(W, X, Y, stats=Statistics.from_data(X, Y))
    with pytest.raises(InputError, match=r"gtol must be in \(0, 1\)"):
        dlcert.check(W, X, Y, gtol=2.0)


def test_square_data_needs_a_layout(rng: np.random.Generator) -> None:
    X = rng.standard_normal((3, 3))
    Y = rng.standard_normal((3, 3))
    W = [rng.standard_normal((3, 3)), rng.standard_normal((3, 3))]
    with pytest.raises(InputError, match="cannot tell the data layout"):
        dlcert.check(W, X, Y)
    assert dlcert.check(W, X, Y, layout="rows").m == 3


def test_one_dimensional_targets(rng: np.random.Generator) -> None:
    X = rng.standard_normal((50, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.standard_normal(50)
    W = [rng.standard_normal((2, 3)), rng.standard_normal((1, 2))]
    cert = dlcert.check(W, X, y, layout="rows")
    assert cert.widths == [3, 2, 1] and cert.m == 50


def test_state_dict_is_taken_as_linear_and_says_so(problem: tuple) -> None:
    X, Y, W, _ = problem
    sd = {"0.weight": W[0], "2.weight": W[1], "4.weight": W[2]}
    cert = dlcert.check(sd, X, Y)
    assert cert.verdict is Verdict.GLOBAL_MINIMUM
    assert any("taken as a linear chain" in r.message for r in cert.reasons)
    with pytest.raises(InputError, match=r"'0.bias': biases are not supported"):
        dlcert.check({"0.weight": W[0], "0.bias": np.zeros(3)}, X, Y)


def test_training_loop_dict_in_memory(problem: tuple) -> None:
    X, Y, W, _ = problem
    ckpt = {"epoch": 3, "model_state_dict": {f"W{i}": w for i, w in enumerate(W, 1)},
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.1}]}}
    cert = dlcert.check(ckpt, X, Y)
    assert cert.verdict is Verdict.GLOBAL_MINIMUM
    assert any("'model_state_dict'" in r.message for r in cert.reasons)
    two = {"model": {"W1": W[0]}, "ema": {"W1": W[0]}}
    with pytest.raises(InputError, match=r"2 dicts of tensors \('model', 'ema'\); choose one with --key"):
        dlcert.check(two, X, Y)
    with pytest.raises(InputError, match=r"--key 'nope': no entry 'nope'; it has 'epoch'"):
        dlcert.check(ckpt, X, Y, key="nope")


def test_flax_tree_kernels_are_transposed(problem: tuple) -> None:
    X, Y, W, _ = problem
    tree = {"params": {f"Dense_{i}": {"kernel": w.T.copy()} for i, w in enumerate(W)}}
    cert = dlcert.check(tree, X, Y)
    ref = dlcert.check(W, X, Y)
    assert cert.verdict is ref.verdict is Verdict.GLOBAL_MINIMUM
    assert cert.loss == pytest.approx(ref.loss, rel=1e-12)
    assert any("(in, out)" in r.message for r in cert.reasons)
    tree["params"]["Dense_0"]["bias"] = np.zeros(3)
    with pytest.raises(InputError, match=r"'Dense_0/bias': biases are not supported.*use_bias=False"):
        dlcert.check(tree, X, Y)


def test_passed_follows_the_requirements(problem: tuple) -> None:
    X, Y, W, S = problem
    glob, saddle = dlcert.check(W, X, Y), dlcert.check(S, X, Y)
    assert saddle.verdict is Verdict.STRICT_SADDLE
    assert dlcert.passed(glob) and dlcert.passed(glob, require="critical")
    assert not dlcert.passed(saddle) and dlcert.passed(saddle, require="critical")
    moved = [w + 0.1 for w in W]
    nc = dlcert.check(moved, X, Y)
    assert nc.verdict is Verdict.NOT_CRITICAL
    assert not dlcert.passed(nc, "critical") and dlcert.passed(nc, "any")
    assert dlcert.passed(nc, "decided")
    unsure = replace(saddle, verdict=Verdict.INCONCLUSIVE)
    assert not dlcert.passed(unsure, "critical") and not dlcert.passed(unsure, "decided")
    assert dlcert.passed(unsure, "any")
    with pytest.raises(InputError, match="require 'best' is not one of global, critical, decided, any"):
        dlcert.passed(glob, "best")


def test_passed_is_the_gate_of_the_command_line() -> None:
    from dlcert.gate import Requirement, passes

    base = dlcert.check([np.eye(2)], np.eye(2), 2 * np.eye(2), layout="rows")
    for require in Requirement:
        for verdict in Verdict:
            cert = replace(base, verdict=verdict)
            assert dlcert.passed(cert, require.value) is passes(require, verdict), (require, verdict)


def test_mse_is_the_mean_of_squared_errors(problem: tuple) -> None:
    X, Y, W, _ = problem
    cert = dlcert.check(W, X, Y)
    R = W[2] @ W[1] @ W[0]
    s = loss_summary(cert)
    assert s["mse"] == pytest.approx(float(np.mean((R @ X - Y) ** 2)), rel=1e-10)
    assert s["loss"] == pytest.approx(0.5 * float(np.sum((R @ X - Y) ** 2)), rel=1e-10)
    assert "MSE = 2 loss / (m dy)" in s["conversion"]
    d = json.loads(dlcert.to_json(cert))
    assert d["schema"] == "dlcert.check/1" and d["verdict"] == "global_minimum"
    assert d["mse"] == pytest.approx(s["mse"]) and "m = 40, dy = 4" in d["mse_conversion"]
    assert dlcert.to_dict(cert)["loss"] == d["loss"]


def test_notebook_html_and_rich(problem: tuple) -> None:
    X, Y, _, S = problem
    cert = dlcert.check(S, X, Y)
    page = certificate_html(cert)
    assert "STRICT SADDLE" in page and "escape witness" in page and "yun2018.thm2.1" in page
    assert "<script" not in page and page.count("<table") >= 3
    buf = StringIO()
    Console(file=buf, width=100, color_system=None).print(certificate_rich(cert))
    text = buf.getvalue()
    assert "STRICT SADDLE" in text and "MSE =" in text and "2 loss / (m dy)" in text


def test_html_escapes_text(problem: tuple) -> None:
    X, Y, W, _ = problem
    cert = dlcert.check({"W1": W[0], "W2": W[1], "W3": W[2]}, X, Y)
    import dataclasses

    odd = dataclasses.replace(cert, reasons=["<b>not bold</b> & co"])
    page = certificate_html(odd)
    assert "&lt;b&gt;not bold&lt;/b&gt; &amp; co" in page and "<b>not bold</b>" not in page


def test_landscape_from_widths_and_from_a_model(problem: tuple) -> None:
    X, Y, W, _ = problem
    a = dlcert.landscape(WIDTHS, X, Y)
    b = dlcert.landscape(W, X.T, Y.T, layout="rows")
    cert = dlcert.check(W, X, Y)
    assert a.optimal_loss == pytest.approx(cert.optimal_loss, rel=1e-12)
    assert b.optimal_loss == pytest.approx(a.optimal_loss, rel=1e-12)
    with pytest.raises(InputError, match="X has shape"):
        dlcert.landscape([6, 2, 4], X, Y)


def test_recheck_a_certificate_and_a_saved_witness(problem: tuple, tmp_path: Path) -> None:
    X, Y, _, S = problem
    cert = dlcert.check(S, X, Y)
    assert cert.witness is not None
    assert dlcert.recheck(cert, S, X, Y).confirmed
    path = tmp_path / "w.npz"
    save_weights(path, cert.witness.point, {"radius": cert.witness.radius, "order": cert.witness.order})
    again = dlcert.recheck(path, S, X, Y)
    assert again.confirmed and again.order == cert.witness.order
    # A "witness" that is the point itself decreases nothing: not confirmed.
    assert not dlcert.recheck(S, S, X, Y).confirmed


def test_load_npz_with_and_without_data(problem: tuple, tmp_path: Path) -> None:
    X, Y, W, _ = problem
    np.savez(tmp_path / "m.npz", W1=W[0], W2=W[1], W3=W[2])
    np.savez(tmp_path / "d.npz", x=X, y=Y)  # lower-case names
    bare = dlcert.load(tmp_path / "m.npz")
    assert bare.stats is None and len(bare.weights) == 3
    with pytest.raises(InputError, match="no data"):
        dlcert.check(bare)
    assert dlcert.check(bare, X, Y).verdict is Verdict.GLOBAL_MINIMUM
    full = dlcert.load(tmp_path / "m.npz", data=tmp_path / "d.npz")
    assert full.stats is not None and full.stats.m == 40
    assert dlcert.check(full).verdict is Verdict.GLOBAL_MINIMUM


def test_version_is_the_package_metadata() -> None:
    from importlib.metadata import version

    assert dlcert.__version__ == version("dlcert")


class FakeJaxArray:
    """Stands in for a JAX array: dlcert sees only its type's module, shape, dtype, __array__."""

    __module__ = "jaxlib.xla_extension"

    def __init__(self, a: np.ndarray, dtype_name: str | None = None) -> None:
        self.a = a
        self.shape = a.shape
        self.dtype = dtype_name or a.dtype

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        return self.a if dtype is None else self.a.astype(dtype)


def test_jax_like_arrays_and_bfloat16(problem: tuple) -> None:
    X, Y, W, _ = problem
    ref = dlcert.check(W, X, Y)
    cert = dlcert.check([FakeJaxArray(w) for w in W], FakeJaxArray(X), FakeJaxArray(Y))
    assert cert.loss == pytest.approx(ref.loss, rel=1e-12)
    bf = dlcert.check([FakeJaxArray(w.astype(np.float32), "bfloat16") for w in W], X, Y)
    assert (bf.tolerances.weights_eps, bf.tolerances.eps) == (2.0**-7, float(np.finfo(np.float64).eps))


def test_import_dlcert_imports_no_framework() -> None:
    import subprocess
    import sys

    code = ("import sys, numpy as np, dlcert; "
            "dlcert.check([np.eye(2)], np.eye(2), 2 * np.eye(2), layout='rows'); "
            "print(sorted(m for m in ('torch', 'jax', 'flax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_api_names_stay_functions_after_the_submodules_load() -> None:
    import dlcert.cli

    assert callable(dlcert.landscape) and callable(dlcert.recheck) and callable(dlcert.check)


def test_ragged_lists_get_the_validators_line(problem: tuple) -> None:
    _, Y, W, _ = problem
    with pytest.raises(InputError, match=r"^X is a list; expected a numpy array$"):
        dlcert.check(W, [[1.0, 2.0], [3.0]], Y)
