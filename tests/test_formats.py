"""Weights from safetensors files and PyTorch state_dicts give the same certificate as .npz."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlcert.errors import InputError
from dlcert.formats import layer_names
from dlcert.io import load_problem

SAMPLE = "strict_saddle"


def _sample(samples_dir: Path) -> dict[str, np.ndarray]:
    with np.load(samples_dir / f"{SAMPLE}.npz", allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlcert", "check", *args], capture_output=True,
                          text=True, timeout=300)


def _data(tmp_path: Path, arrays: dict[str, np.ndarray]) -> Path:
    path = tmp_path / "data.npz"
    np.savez(path, X=arrays["X"], Y=arrays["Y"])
    return path


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["0.weight", "1.weight"], ["0.weight", "1.weight"]),
        (["layers.10.weight", "layers.2.weight"], ["layers.2.weight", "layers.10.weight"]),
        (["fc2.weight", "fc1.weight"], ["fc1.weight", "fc2.weight"]),
        (["weight"], ["weight"]),
    ],
)
def test_linear_stack_names_in_natural_order(names: list[str], expected: list[str]) -> None:
    arrays = {n: np.full((1, 1), float(i)) for i, n in enumerate(names)}
    out = layer_names(arrays, "m.safetensors")
    assert [float(out[f"W{i + 1}"][0, 0]) for i in range(len(names))] == [
        float(arrays[n][0, 0]) for n in expected
    ]


@pytest.mark.parametrize(
    ("arrays", "needle"),
    [
        ({"0.weight": np.ones((2, 2)), "0.bias": np.ones(2)}, "biases"),
        ({"encoder.weight": np.ones((2, 2)), "decoder.weight": np.ones((2, 2))}, "cannot order"),
        ({"running_mean": np.ones(2)}, "no weights"),
    ],
)
def test_unusable_names_are_input_errors(arrays: dict[str, np.ndarray], needle: str) -> None:
    with pytest.raises(InputError, match=needle):
        layer_names(arrays, "m.safetensors")


def test_safetensors_matches_npz(samples_dir: Path, tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    arrays = _sample(samples_dir)
    path = tmp_path / "model.safetensors"
    st.save_file({"net.0.weight": arrays["W1"], "net.1.weight": arrays["W2"]}, str(path))
    data = _data(tmp_path, arrays)
    ours = _check(str(path), "--data", str(data), "-f", "json")
    ref = _check(str(samples_dir / f"{SAMPLE}.npz"), "-f", "json")
    assert ours.returncode == ref.returncode == 3, ours.stderr
    a, b = json.loads(ours.stdout), json.loads(ref.stdout)
    assert a["verdict"] == b["verdict"] == "strict_saddle"
    assert a["loss"] == pytest.approx(b["loss"], rel=1e-12)
    assert a["gap"] == pytest.approx(b["gap"], rel=1e-10)


def test_truncated_safetensors_is_one_line(samples_dir: Path, tmp_path: Path) -> None:
    st = pytest.importorskip("safetensors.numpy")
    arrays = _sample(samples_dir)
    path = tmp_path / "cut.safetensors"
    st.save_file({"W1": arrays["W1"], "W2": arrays["W2"]}, str(path))
    path.write_bytes(path.read_bytes()[:-20])
    proc = _check(str(path), "--data", str(_data(tmp_path, arrays)))
    assert proc.returncode == 2 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "cut.safetensors" in proc.stderr


def test_torch_state_dict_matches_npz(samples_dir: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    arrays = _sample(samples_dir)
    model = torch.nn.Sequential(
        torch.nn.Linear(arrays["W1"].shape[1], arrays["W1"].shape[0], bias=False),
        torch.nn.Linear(arrays["W2"].shape[1], arrays["W2"].shape[0], bias=False),
    ).double()
    with torch.no_grad():
        model[0].weight.copy_(torch.from_numpy(arrays["W1"]))
        model[1].weight.copy_(torch.from_numpy(arrays["W2"]))
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    problem = load_problem(path, _data(tmp_path, arrays))
    assert all(np.array_equal(a, arrays[f"W{i + 1}"]) for i, a in enumerate(problem.weights))
    proc = _check(str(path), "--data", str(_data(tmp_path, arrays)), "-f", "json")
    assert proc.returncode == 3 and json.loads(proc.stdout)["verdict"] == "strict_saddle"


def test_torch_checkpoint_with_biases_or_optimizer_is_refused(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 2))
    torch.save(model.state_dict(), tmp_path / "biased.pt")
    with pytest.raises(InputError, match="biases"):
        load_problem(tmp_path / "biased.pt")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, tmp_path / "ckpt.pt")
    with pytest.raises(InputError, match="state_dict"):
        load_problem(tmp_path / "ckpt.pt")


class _Exploit:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (Path.touch, (Path(self.marker),))  # type: ignore[return-value]


def test_pickled_code_in_a_pt_file_is_never_run(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"0.weight": torch.ones(2, 2), "payload": _Exploit(str(marker))}, path)
    proc = _check(str(path), "--data", str(tmp_path / "none.npz"))
    assert proc.returncode == 2
    assert not marker.exists()
    assert len(proc.stderr.strip().splitlines()) == 1 and "evil.pt" in proc.stderr


def test_missing_extra_gives_install_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dlcert.formats as formats

    def no_module(name: str) -> object:
        raise ImportError(name)

    monkeypatch.setattr(formats.importlib, "import_module", no_module)
    path = tmp_path / "m.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(InputError, match=r"pip install 'dlcert\[safetensors\]'"):
        load_problem(path)
