"""PyTorch objects through the API: modules, tensors (dtype, grad), refusals; checkpoint files."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from constructions import construct, random_data
from typer.testing import CliRunner

import dlcert
from dlcert.certificate import Verdict
from dlcert.checkpoints import SAVE_STATE_DICT
from dlcert.cli import app
from dlcert.errors import InputError
from dlcert.frameworks import BFLOAT16_EPS
from dlcert.statistics import Statistics

torch = pytest.importorskip("torch")
nn = torch.nn

WIDTHS = [5, 3, 2, 4]


@pytest.fixture
def problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    X, Y = random_data(rng, WIDTHS[0], WIDTHS[-1], 40)
    found = construct(rng, Statistics.from_data(X, Y), WIDTHS, [1, 2])
    assert found is not None
    return X, Y, found.weights


def sequential(weights: list[np.ndarray], dtype: Any = None) -> Any:
    layers = []
    for w in weights:
        lin = nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=torch.float64)
        with torch.no_grad():
            lin.weight.copy_(torch.from_numpy(w))
        layers.append(lin)
    model = nn.Sequential(*layers)
    return model.to(dtype) if dtype is not None else model


def test_module_and_tensors_give_the_numpy_certificate(problem: tuple) -> None:
    X, Y, W = problem
    ref = dlcert.check(W, X, Y)
    model = sequential(W)
    Xt = torch.tensor(X.T, requires_grad=True)  # rows layout, a tensor that needs grad
    cert = dlcert.check(model, Xt, torch.from_numpy(Y.T))
    assert cert.verdict is ref.verdict is Verdict.GLOBAL_MINIMUM
    assert cert.loss == pytest.approx(ref.loss, rel=1e-12)
    assert not any("taken as a linear chain" in r.message for r in cert.reasons)  # the module was probed
    sd = dlcert.check(model.state_dict(), X, Y)
    assert sd.loss == pytest.approx(ref.loss, rel=1e-12)
    assert any("taken as a linear chain" in r.message for r in sd.reasons)
    assert dlcert.check([torch.from_numpy(w) for w in W], X, Y).loss == pytest.approx(ref.loss, rel=1e-12)


def test_bfloat16_and_float32_set_their_precision(problem: tuple) -> None:
    X, Y, W = problem
    bf = dlcert.check(sequential(W, torch.bfloat16), X, Y)
    assert bf.tolerances.weights_eps == BFLOAT16_EPS
    assert bf.tolerances.eps == float(np.finfo(np.float64).eps)  # the data's precision
    f32 = dlcert.check(sequential(W), torch.from_numpy(X).float(), torch.from_numpy(Y).float())
    assert f32.tolerances.eps == pytest.approx(float(np.finfo(np.float32).eps))
    assert f32.verdict is Verdict.GLOBAL_MINIMUM


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_weights_on_float32_data(problem: tuple, dtype: str) -> None:
    """A global minimum cast to half precision is certified within the floors its precision
    sets (never by a gtol above 1e-2 or an ftol above 1e-4); a random model of the same dtype
    is not critical and fails --require critical."""
    X, Y, W = problem
    half = getattr(torch, dtype)
    x32, y32 = torch.from_numpy(X).float(), torch.from_numpy(Y).float()
    cert = dlcert.check(sequential(W, half), x32, y32)
    t = cert.tolerances
    assert t.weights_eps == float(torch.finfo(half).eps)
    assert t.eps == pytest.approx(float(np.finfo(np.float32).eps))
    assert t.gtol_requested == pytest.approx(10 * float(np.finfo(np.float32).eps) ** 0.5)
    assert t.gtol <= 1e-2 and t.ftol <= 1e-4
    assert cert.verdict is Verdict.GLOBAL_MINIMUM, cert.reasons
    assert cert.relative_gap <= t.ftol
    torch.manual_seed(0)
    random_model = nn.Sequential(*[nn.Linear(i, o, bias=False) for i, o in itertools.pairwise(WIDTHS)])
    rand = dlcert.check(random_model.to(half), x32, y32)
    assert rand.verdict is Verdict.NOT_CRITICAL and rand.rule == "not_critical.gradient"
    assert not rand.passed("critical")


def test_relu_is_refused_naming_the_submodule(problem: tuple) -> None:
    X, Y, W = problem
    model = sequential(W)
    model.insert(1, nn.ReLU())
    with pytest.raises(InputError) as info:
        dlcert.check(model, X, Y)
    line = str(info.value)
    assert line == ("weights.1 is a ReLU: dlcert certifies chains of bias-free nn.Linear layers "
                    "only (nothing between them)")


def test_bias_and_functional_activation_are_refused(problem: tuple) -> None:
    X, Y, _ = problem
    with pytest.raises(InputError, match=r"^weights.0 is nn.Linear with a bias"):
        dlcert.check(nn.Sequential(nn.Linear(5, 3), nn.Linear(3, 4, bias=False)), X, Y)

    class Sneaky(nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Linear(5, 3, bias=False, dtype=torch.float64)
            self.b = nn.Linear(3, 4, bias=False, dtype=torch.float64)

        def forward(self, x: Any) -> Any:
            return self.b(torch.relu(self.a(x)))

    with pytest.raises(InputError, match=r"forward is not the chain of its nn.Linear layers.*an activation"):
        dlcert.check(Sneaky(), X, Y)

    class Chain(Sneaky):
        def forward(self, x: Any) -> Any:
            return self.b(self.a(x))

    assert dlcert.check(Chain(), X, Y).widths == [5, 3, 4]


def torch_run(tmp_path: Path, W: list[np.ndarray], X: np.ndarray, Y: np.ndarray) -> tuple[Path, Path, Any]:
    """A training-loop checkpoint and a torch.save data file with lower-case names, rows layout."""
    model = sequential(W)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 5, dtype=torch.float64)).sum().backward()
    opt.step()  # the optimizer state holds tensors too
    ckpt = tmp_path / "ckpt.pt"
    torch.save({"epoch": 3, "model_state_dict": model.state_dict(),
                "optimizer_state_dict": opt.state_dict(), "loss": 0.5}, ckpt)
    data = tmp_path / "train.pt"
    torch.save({"x": torch.from_numpy(X.T.copy()), "y": torch.from_numpy(Y.T.copy())}, data)
    return ckpt, data, model


def test_cli_reads_training_loop_checkpoints_and_torch_data(tmp_path: Path, problem: tuple) -> None:
    X, Y, W = problem
    ckpt, data, model = torch_run(tmp_path, W, X, Y)
    runner = CliRunner()
    res = runner.invoke(app, ["check", str(ckpt), "--data", str(data), "-f", "json"])
    assert res.exit_code == 4, res.output  # Adam moved it off the optimum
    loaded = dlcert.load(ckpt, data=data)
    assert loaded.stats is not None and loaded.stats.m == 40
    np.testing.assert_array_equal(loaded.weights[0], model[0].weight.detach().numpy())
    res = runner.invoke(app, ["check", str(ckpt), "--data", str(data), "--key", "model_state_dict"])
    assert res.exit_code == 4
    res = runner.invoke(app, ["check", str(ckpt), "--data", str(data), "--key", "optimizer_state_dict"])
    assert res.exit_code == 2
    assert "--key 'optimizer_state_dict' is a dict, not a dict of tensors" in res.output


def test_cli_ambiguous_checkpoint_asks_for_key(tmp_path: Path, problem: tuple) -> None:
    X, Y, W = problem
    sd = sequential(W).state_dict()
    torch.save({"model": sd, "ema": sd, "step": 7}, tmp_path / "two.pt")
    np.savez(tmp_path / "d.npz", X=X, Y=Y)
    runner = CliRunner()
    res = runner.invoke(app, ["check", str(tmp_path / "two.pt"), "--data", str(tmp_path / "d.npz")])
    assert res.exit_code == 2
    assert "holds 2 dicts of tensors ('model', 'ema'); choose one with --key NAME" in res.output
    res = runner.invoke(app, ["check", str(tmp_path / "two.pt"), "--data", str(tmp_path / "d.npz"),
                              "--key", "ema", "-f", "json"])
    assert res.exit_code == 0, res.output


def test_lightning_ckpt(tmp_path: Path, problem: tuple) -> None:
    X, Y, W = problem
    sd = {f"model.{k}": v for k, v in sequential(W).state_dict().items()}
    torch.save({"epoch": 9, "global_step": 90, "pytorch-lightning_version": "2.5.0",
                "state_dict": sd, "loops": {"fit_loop": {"epoch": 9}}}, tmp_path / "last.ckpt")
    loaded = dlcert.load(tmp_path / "last.ckpt")
    assert loaded.stats is None and len(loaded.weights) == 3
    assert dlcert.check(loaded, X, Y).verdict is Verdict.GLOBAL_MINIMUM


def test_whole_model_pickle_is_refused_with_the_line_that_fixes_it(tmp_path: Path, problem: tuple) -> None:
    X, Y, W = problem
    torch.save(sequential(W), tmp_path / "model.pt")
    np.savez(tmp_path / "d.npz", X=X, Y=Y)
    proc = subprocess.run([sys.executable, "-m", "dlcert", "check", str(tmp_path / "model.pt"),
                           "--data", str(tmp_path / "d.npz")], capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1
    assert SAVE_STATE_DICT in proc.stderr and "weights_only=True" in proc.stderr


def test_torch_data_as_a_pair_and_one_dimensional_targets(tmp_path: Path, rng: np.random.Generator) -> None:
    X = rng.standard_normal((60, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    torch.save((torch.from_numpy(X), torch.from_numpy(y)), tmp_path / "pair.pt")
    w_opt = np.array([[1.0, -2.0, 0.5]])
    np.savez(tmp_path / "m.npz", W1=w_opt)
    res = CliRunner().invoke(app, ["check", str(tmp_path / "m.npz"), "--data", str(tmp_path / "pair.pt")])
    assert res.exit_code == 0, res.output


def test_landscape_reads_torch_data_and_lower_case_names_everywhere(tmp_path: Path, problem: tuple) -> None:
    X, Y, W = problem
    torch.save({"x": torch.from_numpy(X), "y": torch.from_numpy(Y)}, tmp_path / "train.pt")
    runner = CliRunner()
    res = runner.invoke(app, ["landscape", str(tmp_path / "train.pt"), "--widths", "5,3,2,4", "-f", "json"])
    assert res.exit_code == 0, res.output
    cert = dlcert.check(W, X, Y)
    import json

    assert json.loads(res.stdout)["optimal_loss"] == pytest.approx(cert.optimal_loss, rel=1e-12)
    np.savez(tmp_path / "all.npz", x=X, y=Y, **{f"W{i}": w for i, w in enumerate(W, 1)})
    assert runner.invoke(app, ["check", str(tmp_path / "all.npz")]).exit_code == 0


def test_cli_says_a_state_dict_file_is_taken_as_linear(tmp_path: Path, problem: tuple) -> None:
    X, Y, W = problem
    torch.save(sequential(W).state_dict(), tmp_path / "m.pt")
    np.savez(tmp_path / "d.npz", X=X, Y=Y)
    args = ["check", str(tmp_path / "m.pt"), "--data", str(tmp_path / "d.npz"), "-f", "json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    import json

    assert any("taken as a linear chain" in r["message"] for r in json.loads(res.stdout)["reasons"])
