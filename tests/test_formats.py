"""Weights from safetensors and PyTorch ``state_dict`` files (dlcert.formats, SPEC §6).

The safetensors tests need the ``safetensors`` package (in the ``test`` extra); the PyTorch
tests skip without ``torch``. Round trips compare whole certificates with the ones of the same
weights stored as ``.npz``; refusals check the one-line message and exit code 2.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcert import certify
from dlcert.cli import app
from dlcert.errors import InputError, ResourceError
from dlcert.formats import BFLOAT16_EPS, read_weights
from dlcert.frameworks import LINEAR_NOTE
from dlcert.io import load_problem, read_npz
from dlcert.manifest import load_check_input
from dlcert.resources import ENV_LIMIT, FOREIGN_FACTOR, guard_files, load_estimate

st_numpy = pytest.importorskip("safetensors.numpy")

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ROUND_TRIP = ["strict_saddle", "global_bottleneck", "non_strict_saddle", "global_float32_rows"]


def need_torch() -> Any:
    return pytest.importorskip("torch")


def split_sample(name: str, tmp: Path) -> tuple[list[np.ndarray], Path]:
    """The sample's weights (in layer order) and its data written to ``data.npz``."""
    arrays = read_npz(SAMPLES / f"{name}.npz")
    n = sum(1 for k in arrays if k.startswith("W"))
    data = tmp / "data.npz"
    np.savez(data, X=arrays["X"], Y=arrays["Y"])
    return [arrays[f"W{i}"] for i in range(1, n + 1)], data


def timeless(value: Any) -> Any:
    """A certificate dict without its wall-clock fields (``seconds``), for comparison."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return value


def certificate_of(weights: Path, data: Path | None = None) -> dict[str, Any]:
    p = load_problem(weights, data)
    return timeless(certify(p.weights, p.stats, eps=p.eps).to_dict())


def save_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    st_numpy.save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path))
    return path


def write_raw_safetensors(path: Path, tensors: dict[str, tuple[str, tuple[int, ...], bytes]]) -> Path:
    """A safetensors file written from its format (8-byte header length, JSON header, bytes),
    for dtypes numpy cannot hand to ``save_file`` (BF16, F8_E4M3)."""
    header: dict[str, Any] = {}
    offset = 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(t[2] for t in tensors.values()))
    return path


def linear_stack(torch: Any, weights: list[np.ndarray]) -> Any:
    """An ``nn.Sequential`` of bias-free Linear layers holding ``weights`` in their dtype."""
    layers = []
    for w in weights:
        layer = torch.nn.Linear(w.shape[1], w.shape[0], bias=False, dtype=torch.from_numpy(w).dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(w))
        layers.append(layer)
    return torch.nn.Sequential(*layers)


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlcert", *args], capture_output=True, text=True, timeout=300,
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def assert_input_error(path: Path, *args: str, data: Path | None = None) -> str:
    """``dlcert check PATH`` exits 2 with one stderr line naming the file; returns the line."""
    argv = ["check", str(path), *(["--data", str(data)] if data is not None else []), *args]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("dlcert: error: "), result.stderr
    assert str(path) in result.stderr
    return result.stderr


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """Data for a 4 -> 3 -> 2 network."""
    rng = np.random.default_rng(3)
    path = tmp_path / "data.npz"
    np.savez(path, X=rng.standard_normal((4, 20)), Y=rng.standard_normal((2, 20)))
    return path


@pytest.fixture
def w432() -> list[np.ndarray]:
    rng = np.random.default_rng(4)
    return [rng.standard_normal((3, 4)), rng.standard_normal((2, 3))]


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_safetensors_round_trip_gives_the_npz_certificate(tmp_path: Path, name: str) -> None:
    weights, data = split_sample(name, tmp_path)
    path = save_safetensors(tmp_path / "m.safetensors", {f"W{i}": w for i, w in enumerate(weights, 1)})
    assert certificate_of(path, data) == certificate_of(SAMPLES / f"{name}.npz")


@pytest.mark.parametrize("name", ROUND_TRIP)
def test_torch_round_trip_gives_the_npz_certificate(tmp_path: Path, name: str) -> None:
    torch = need_torch()
    weights, data = split_sample(name, tmp_path)
    path = tmp_path / "m.pt"
    torch.save(linear_stack(torch, weights).state_dict(), path)
    assert certificate_of(path, data) == certificate_of(SAMPLES / f"{name}.npz")


def test_float32_weights_keep_float32_precision(tmp_path: Path) -> None:
    weights, data = split_sample("global_float32_rows", tmp_path)
    path = save_safetensors(tmp_path / "m.safetensors", {"0.weight": weights[0], "1.weight": weights[1]})
    assert load_problem(path, data).eps == float(np.finfo(np.float32).eps)


# ---------------------------------------------------------------- names and order


@pytest.mark.parametrize(
    "names",
    [
        ["0.weight", "1.weight"],
        ["layers.0.weight", "layers.1.weight"],
        ["fc1.weight", "fc2.weight"],
        ["module.net.0.weight", "module.net.1.weight"],
        ["0.0.weight", "1.weight"],  # nested Sequential
    ],
)
def test_safetensors_parameter_names(tmp_path: Path, w432: list[np.ndarray], names: list[str]) -> None:
    # written output layer first: the order must come from the numbers, not the file
    path = save_safetensors(tmp_path / "m.safetensors", {names[1]: w432[1], names[0]: w432[0]})
    got = read_weights(path)
    assert list(got.arrays) == ["W1", "W2"]
    assert got.names == {"W1": names[0], "W2": names[1]}
    for k, w in zip(("W1", "W2"), w432, strict=True):
        np.testing.assert_array_equal(got.arrays[k], w)


def test_safetensors_natural_order_puts_2_before_10(tmp_path: Path, data: Path) -> None:
    rng = np.random.default_rng(5)
    widths = [4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 3, 2]  # distinct: any misorder breaks the chain
    weights = [rng.standard_normal((widths[i + 1], widths[i])) for i in range(len(widths) - 1)]
    tensors = {f"layers.{i}.weight": w for i, w in enumerate(weights)}
    path = save_safetensors(tmp_path / "m.safetensors", tensors)
    problem = load_problem(path, data)
    assert [w.shape for w in problem.weights] == [w.shape for w in weights]
    for got, want in zip(problem.weights, weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_safetensors_single_layer_named_weight(tmp_path: Path) -> None:
    w = np.arange(6.0).reshape(2, 3)
    got = read_weights(save_safetensors(tmp_path / "m.safetensors", {"weight": w}))
    np.testing.assert_array_equal(got.arrays["W1"], w)


@pytest.mark.parametrize(
    "names",
    [["encoder.weight", "head.weight"], ["fc1.weight", "head.weight"], ["a.0.weight", "b.0.weight"]],
)
def test_safetensors_names_without_a_layer_number_are_refused(
    tmp_path: Path, w432: list[np.ndarray], names: list[str]
) -> None:
    path = save_safetensors(tmp_path / "m.safetensors", dict(zip(names, w432, strict=True)))
    with pytest.raises(InputError, match=r"cannot order the layers.*W1\.\.WN") as info:
        read_weights(path)
    assert str(path) in str(info.value)


def test_torch_uses_registration_order_not_names(tmp_path: Path, data: Path, w432: list[np.ndarray]) -> None:
    torch = need_torch()

    class Net(torch.nn.Module):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.zeta = torch.nn.Linear(4, 3, bias=False, dtype=torch.float64)  # input layer
            self.alpha = torch.nn.Linear(3, 2, bias=False, dtype=torch.float64)

    net = Net()
    with torch.no_grad():
        net.zeta.weight.copy_(torch.from_numpy(w432[0]))
        net.alpha.weight.copy_(torch.from_numpy(w432[1]))
    path = tmp_path / "m.pth"
    torch.save(net.state_dict(), path)
    problem = load_problem(path, data)
    for got, want in zip(problem.weights, w432, strict=True):
        np.testing.assert_array_equal(got, want)


def test_torch_module_list_and_w_names(tmp_path: Path, w432: list[np.ndarray]) -> None:
    torch = need_torch()
    stack = linear_stack(torch, w432)
    holder = torch.nn.Module()
    holder.layers = torch.nn.ModuleList(list(stack))
    torch.save(holder.state_dict(), tmp_path / "a.bin")
    assert read_weights(tmp_path / "a.bin").names == {"W1": "layers.0.weight", "W2": "layers.1.weight"}
    torch.save({"W2": torch.from_numpy(w432[1]), "W1": torch.from_numpy(w432[0])}, tmp_path / "b.pt")
    got = read_weights(tmp_path / "b.pt")
    np.testing.assert_array_equal(got.arrays["W1"], w432[0])


def test_shape_errors_name_the_tensor(tmp_path: Path, data: Path, w432: list[np.ndarray]) -> None:
    path = save_safetensors(tmp_path / "m.safetensors", {"fc1.weight": w432[0], "fc2.weight": w432[0]})
    line = assert_input_error(path, data=data)
    assert "W2 (fc2.weight) has 4 columns but W1 (fc1.weight) has 3 rows" in line


def test_w_names_with_a_gap(tmp_path: Path, data: Path, w432: list[np.ndarray]) -> None:
    path = save_safetensors(tmp_path / "m.safetensors", {"W1": w432[0], "W3": w432[1]})
    assert "W2 is missing" in assert_input_error(path, data=data)


def test_mixed_names_are_refused(tmp_path: Path, w432: list[np.ndarray]) -> None:
    path = save_safetensors(tmp_path / "m.safetensors", {"W1": w432[0], "1.weight": w432[1]})
    with pytest.raises(InputError, match=r"mixes W1\.\.WN names"):
        read_weights(path)


# ---------------------------------------------------------------- refusals


def test_safetensors_bias_is_refused(tmp_path: Path, data: Path, w432: list[np.ndarray]) -> None:
    path = save_safetensors(
        tmp_path / "m.safetensors", {"0.weight": w432[0], "0.bias": np.zeros(3), "1.weight": w432[1]}
    )
    line = assert_input_error(path, data=data)
    assert "'0.bias'" in line and "biases are not supported" in line and "bias-free" in line


def test_torch_bias_is_refused(tmp_path: Path, data: Path) -> None:
    torch = need_torch()
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
    path = tmp_path / "m.pt"
    torch.save(model.state_dict(), path)
    assert "biases are not supported" in assert_input_error(path, data=data)


def test_training_checkpoint_takes_its_only_state_dict(tmp_path: Path, w432: list[np.ndarray]) -> None:
    # The optimizer's state_dict holds lists and numbers, so 'model' is the only dict of tensors
    # (dlcert.checkpoints; more in tests/test_checkpoints.py).
    torch = need_torch()
    model = linear_stack(torch, w432)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.zeros(1, 4, dtype=torch.float64)).sum().backward()
    opt.step()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, path)
    got = read_weights(path)
    assert got.names == {"W1": "0.weight", "W2": "1.weight"}
    np.testing.assert_array_equal(got.arrays["W2"], model[1].weight.detach().numpy())


def test_torch_non_tensor_entry_and_non_mapping(tmp_path: Path, w432: list[np.ndarray]) -> None:
    torch = need_torch()
    torch.save({"0.weight": torch.from_numpy(w432[0]), "step": 7}, tmp_path / "a.pt")
    with pytest.raises(InputError, match=r"'step' is a int, not a tensor.*model\.state_dict\(\)"):
        read_weights(tmp_path / "a.pt")
    torch.save([torch.from_numpy(w) for w in w432], tmp_path / "b.pt")
    with pytest.raises(InputError, match="holds a list, not a state_dict"):
        read_weights(tmp_path / "b.pt")


def test_other_tensors_are_refused(tmp_path: Path, w432: list[np.ndarray]) -> None:
    path = save_safetensors(tmp_path / "m.safetensors", {"W1": w432[0], "W2": w432[1], "X": np.ones((4, 5))})
    with pytest.raises(InputError, match=r"tensor 'X' is not a layer weight.*--data"):
        read_weights(path)


def test_torch_buffers_are_refused(tmp_path: Path) -> None:
    torch = need_torch()
    model = torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.BatchNorm1d(3, affine=False))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    with pytest.raises(InputError, match=r"'1.running_mean' \(and 2 more\) is not a layer weight"):
        read_weights(tmp_path / "m.pt")


def test_weights_only_files_need_data(tmp_path: Path, w432: list[np.ndarray]) -> None:
    path = save_safetensors(tmp_path / "m.safetensors", {"W1": w432[0], "W2": w432[1]})
    assert "holds only weights; pass --data" in assert_input_error(path)


@pytest.mark.parametrize(
    ("dtype", "shape", "raw", "message"),
    [
        ("F8_E4M3", (3, 4), bytes(12), "dtype F8_E4M3, which dlcert cannot read"),
        ("C64", (3, 4), bytes(96), "complex dtype"),
        ("BOOL", (3, 4), bytes(12), "boolean dtype"),
    ],
)
def test_unreadable_dtypes(tmp_path: Path, data: Path, dtype: str, shape: tuple[int, ...], raw: bytes,
                           message: str) -> None:
    w2 = np.ones((2, 3))
    path = write_raw_safetensors(
        tmp_path / "m.safetensors", {"W1": (dtype, shape, raw), "W2": ("F64", w2.shape, w2.tobytes())}
    )
    assert message in assert_input_error(path, data=data)


# ---------------------------------------------------------------- precision


def test_safetensors_bfloat16_is_widened_exactly_and_sets_eps(tmp_path: Path, data: Path) -> None:
    rng = np.random.default_rng(6)
    # float32 values whose low 16 bits are zero are exactly bfloat16
    want = [(rng.standard_normal(s).astype(np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)
            for s in ((3, 4), (2, 3))]
    words = [(w.view(np.uint32) >> 16).astype("<u2") for w in want]
    path = write_raw_safetensors(
        tmp_path / "m.safetensors",
        {f"{i}.weight": ("BF16", w.shape, w.tobytes()) for i, w in enumerate(words)},
    )
    problem = load_problem(path, data)
    assert problem.weights_eps == problem.eps == BFLOAT16_EPS == 2.0**-7
    assert problem.stats.eps == float(np.finfo(np.float64).eps)  # the data's own precision
    for got, w in zip(problem.weights, want, strict=True):
        np.testing.assert_array_equal(got, w.astype(np.float64))
    # the same values stored as float32: same weights, float32's (finer) eps
    same = save_safetensors(tmp_path / "f32.safetensors", {"0.weight": want[0], "1.weight": want[1]})
    assert load_problem(same, data).eps == float(np.finfo(np.float32).eps)


def test_torch_bfloat16_sets_eps(tmp_path: Path, data: Path, w432: list[np.ndarray]) -> None:
    torch = need_torch()
    model = linear_stack(torch, [w.astype(np.float32) for w in w432]).to(torch.bfloat16)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    problem = load_problem(tmp_path / "m.pt", data)
    assert problem.eps == 2.0**-7
    widened = model[0].weight.detach().float().numpy().astype(np.float64)
    np.testing.assert_array_equal(problem.weights[0], widened)


def test_float16_sets_eps(tmp_path: Path, data: Path, w432: list[np.ndarray]) -> None:
    path = save_safetensors(tmp_path / "m.safetensors", {"W1": w432[0].astype(np.float16),
                                                         "W2": w432[1].astype(np.float16)})
    assert load_problem(path, data).eps == 2.0**-10


# ---------------------------------------------------------------- missing packages


@pytest.mark.parametrize(
    ("module", "suffix", "message"),
    [
        ("safetensors", ".safetensors", "reading .safetensors files needs safetensors: "
                                        "pip install 'dlcert[safetensors]'"),
        ("torch", ".pt", "reading .pt files needs PyTorch: pip install 'dlcert[torch]'"),
        ("torch", ".pth", "reading .pth files needs PyTorch: pip install 'dlcert[torch]'"),
    ],
)
def test_missing_package_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, suffix: str,
                                 message: str) -> None:
    path = tmp_path / f"m{suffix}"
    path.write_bytes(b"not read")
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    with pytest.raises(InputError) as info:
        read_weights(path)
    assert str(info.value) == f"{path}: {message}"


# ---------------------------------------------------------------- hostile and damaged files


class _Payload:
    """Unpickling this opens (creates) ``marker``: code execution, if anything runs it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[str, str]]:
        return (open, (self.marker, "w"))


def test_malicious_pickle_is_not_executed(tmp_path: Path, data: Path) -> None:
    torch = need_torch()
    marker, control = tmp_path / "PWNED", tmp_path / "control-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"0.weight": torch.ones(3, 4), "payload": _Payload(marker)}, evil)
    # control: the same kind of file does run its payload when loaded without weights_only
    torch.save({"payload": _Payload(control)}, tmp_path / "control.pt")
    torch.load(tmp_path / "control.pt", weights_only=False)
    assert control.exists()

    proc = run_cli("check", str(evil), "--data", str(data))
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert str(evil) in proc.stderr and "weights_only=True" in proc.stderr
    assert not marker.exists()


def test_whole_module_pickle_is_refused(tmp_path: Path, data: Path, w432: list[np.ndarray]) -> None:
    torch = need_torch()
    torch.save(linear_stack(torch, w432), tmp_path / "m.pt")  # the module object, not its state_dict
    assert "save model.state_dict()" in assert_input_error(tmp_path / "m.pt", data=data)


def _torch_file(tmp_path: Path, w432: list[np.ndarray]) -> bytes:
    torch = need_torch()
    torch.save(linear_stack(torch, w432).state_dict(), tmp_path / "good.pt")
    return (tmp_path / "good.pt").read_bytes()


def _safetensors_file(tmp_path: Path, w432: list[np.ndarray]) -> bytes:
    path = save_safetensors(tmp_path / "good.safetensors", {"0.weight": w432[0], "1.weight": w432[1]})
    return path.read_bytes()


@pytest.mark.parametrize(
    ("suffix", "cut"),
    [(".safetensors", -5), (".safetensors", 20), (".safetensors", 4),
     (".pt", -50), (".pt", 0.5), (".pt", 10)],
)
def test_truncated_files(tmp_path: Path, data: Path, w432: list[np.ndarray], suffix: str, cut: float) -> None:
    full = _safetensors_file(tmp_path, w432) if suffix == ".safetensors" else _torch_file(tmp_path, w432)
    end = int(len(full) * cut) if isinstance(cut, float) else cut
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(full[:end])
    assert "corrupt or truncated" in assert_input_error(path, data=data)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_missing_empty_directory_and_junk(tmp_path: Path, data: Path, suffix: str) -> None:
    if suffix == ".pt":
        need_torch()
    assert "no such file" in assert_input_error(tmp_path / f"none{suffix}", data=data)
    (tmp_path / f"empty{suffix}").write_bytes(b"")
    assert "is empty" in assert_input_error(tmp_path / f"empty{suffix}", data=data)
    (tmp_path / f"dir{suffix}").mkdir()
    assert "is a directory" in assert_input_error(tmp_path / f"dir{suffix}", data=data)
    (tmp_path / f"junk{suffix}").write_bytes(b"this is not a weights file at all" * 4)
    assert_input_error(tmp_path / f"junk{suffix}", data=data)


# ---------------------------------------------------------------- CLI, manifest, resource guard


def test_cli_safetensors_subprocess(tmp_path: Path) -> None:
    weights, data = split_sample("strict_saddle", tmp_path)
    tensors = {"net.0.weight": weights[0], "net.1.weight": weights[1]}
    path = save_safetensors(tmp_path / "m.safetensors", tensors)
    proc = run_cli("check", str(path), "--data", str(data), "-f", "json")
    ref = run_cli("check", str(SAMPLES / "strict_saddle.npz"), "-f", "json")
    assert proc.returncode == ref.returncode == 3, proc.stderr
    assert proc.stderr == ""
    assert timeless(without_linear_note(json.loads(proc.stdout))) == timeless(json.loads(ref.stdout))


def without_linear_note(report: dict[str, Any]) -> dict[str, Any]:
    """The report less the note that weights without their model are taken as linear (checked here)."""
    assert report["reasons"][-1] == {"code": "note.linear_chain", "message": LINEAR_NOTE}
    return {**report, "reasons": report["reasons"][:-1]}


def test_cli_torch_subprocess(tmp_path: Path) -> None:
    torch = need_torch()
    weights, data = split_sample("global_full_rank", tmp_path)
    path = tmp_path / "model.pt"
    torch.save(linear_stack(torch, weights).state_dict(), path)
    proc = run_cli("check", str(path), "--data", str(data), "-f", "json")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["verdict"] == "global_minimum"
    ref = run_cli("check", str(SAMPLES / "global_full_rank.npz"), "-f", "json")
    assert timeless(without_linear_note(got)) == timeless(json.loads(ref.stdout))


def test_manifest_names_a_safetensors_file(tmp_path: Path) -> None:
    weights, _ = split_sample("strict_saddle", tmp_path)
    save_safetensors(tmp_path / "m.safetensors", {"W1": weights[0], "W2": weights[1]})
    (tmp_path / "run.yaml").write_text("weights: m.safetensors\ndata: data.npz\n")
    problem, _, _ = load_check_input(tmp_path / "run.yaml", None, None, None, None)
    reference = load_problem(SAMPLES / "strict_saddle.npz")
    for got, want in zip(problem.weights, reference.weights, strict=True):
        np.testing.assert_array_equal(got, want)


def test_resource_guard_counts_foreign_files(tmp_path: Path, data: Path, w432: list[np.ndarray],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_safetensors(tmp_path / "m.safetensors", {"W1": w432[0], "W2": w432[1]})
    size = path.stat().st_size
    estimate = load_estimate([path])
    assert estimate.bytes == FOREIGN_FACTOR * size
    assert "m.safetensors" in estimate.dominant
    monkeypatch.setenv(ENV_LIMIT, str(FOREIGN_FACTOR * size - 1))
    with pytest.raises(ResourceError, match=r"m\.safetensors"):
        guard_files([path])
    assert "would need about" in assert_input_error(path, data=data)
    monkeypatch.setenv(ENV_LIMIT, str(FOREIGN_FACTOR * size + 10**6))
    guard_files([path])

