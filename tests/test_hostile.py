"""A gate no file can fool (issue 15): hostile and damaged files, generated here, run through the
real CLI in a child process bounded in memory (``DLCERT_MEMORY_LIMIT`` and ``RLIMIT_AS``) and
time (a subprocess timeout). Each must end in one stderr line naming the file and exit 2 (or,
for the forgeries, the correct verdict, never a certificate), with no partial output and every
input byte-for-byte intact.
"""

from __future__ import annotations

import hashlib
import os
import resource
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from dlcert.errors import InputError
from dlcert.io import data_statistics
from dlcert.streaming import open_pair, pair_statistics

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
TIMEOUT = 60  # seconds for one child run; a hang (FIFO, runaway loop) fails here
MEMORY_LIMIT = "256M"  # what dlcert is told it may use
ADDRESS_SPACE = 3 * 2**30  # what the child may map at most (numpy + scipy import needs ~1 GiB)


def _limit() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DLCERT_MEMORY_LIMIT": MEMORY_LIMIT, "OPENBLAS_NUM_THREADS": "1",
                "OMP_NUM_THREADS": "1", "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "dlcert", *args], cwd=cwd, env=full_env, capture_output=True,
        text=True, timeout=TIMEOUT, preexec_fn=_limit, stdin=subprocess.DEVNULL,
    )


def _digest(directory: Path) -> dict[str, str]:
    """Name -> hash (or file kind) of every entry, to show inputs intact and nothing added."""
    out = {}
    for p in sorted(directory.iterdir()):
        if p.is_symlink():
            out[p.name] = "link -> " + os.readlink(p)
        elif p.is_file():
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
        else:
            out[p.name] = "special"
    return out


def assert_refused(result: subprocess.CompletedProcess[str], names: str, before: dict[str, str],
                   after: dict[str, str]) -> None:
    """Exit 2, one stderr line naming ``names`` (a file's name), nothing written or changed."""
    lines = result.stderr.splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("dlcert: error: ")
    assert names in lines[0], lines[0]
    assert "Traceback" not in result.stderr
    assert after == before


def _not_critical() -> dict[str, np.ndarray]:
    return dict(np.load(SAMPLES / "not_critical.npz"))


def _stats_of(X: np.ndarray, Y: np.ndarray) -> dict[str, np.ndarray]:
    return {"Sxx": X @ X.T, "Syx": Y @ X.T, "syy": np.array(float(np.sum(Y * Y))),
            "m": np.array(X.shape[1])}


@dataclass(frozen=True)
class Case:
    """A hostile setup: ``make(dir)`` writes the files and returns the command line; the stderr
    line must contain ``names``."""

    make: Callable[[Path], list[str]]
    names: str


def _npz(path: Path, **arrays: np.ndarray) -> str:
    np.savez(path, **arrays)
    return path.name


def _v3_member_bomb(d: Path) -> list[str]:
    """A tiny .npz whose W1 (header version 3.0, deflated) declares 288 MB of zeros."""
    shape = (6_000, 6_000)
    header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + repr(shape) + ", }"
    header = header + " " * ((64 - (12 + len(header) + 1) % 64) % 64) + "\n"
    npy_head = b"\x93NUMPY\x03\x00" + len(header.encode()).to_bytes(4, "little") + header.encode()
    with zipfile.ZipFile(d / "bomb.npz", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("W1.npy", "w", force_zip64=True) as f:
            f.write(npy_head)
            chunk = bytes(2**24)
            for _ in range(8 * shape[0] * shape[1] // len(chunk)):
                f.write(chunk)
    return ["check", "bomb.npz"]


def _deflated_pt(d: Path) -> list[str]:
    """A .pt zip whose one member inflates to 256 MiB (estimated from the zip, never read)."""
    with zipfile.ZipFile(d / "model.pt", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        with zf.open("archive/data/0", "w", force_zip64=True) as f:
            chunk = bytes(2**24)
            for _ in range(16):
                f.write(chunk)
    _npz(d / "data.npz", X=np.ones((3, 5)), Y=np.ones((2, 5)))
    return ["check", "model.pt", "--data", "data.npz"]


def _huge_npy_layer(d: Path) -> list[str]:
    np.lib.format.open_memmap(d / "W1.npy", mode="w+", dtype=np.float64, shape=(1, 1))
    raw = (d / "W1.npy").read_bytes()  # rewrite the header to declare 40000 x 40000
    (d / "W1.npy").write_bytes(raw.replace(b"(1, 1)", b"(40000, 40000)", 1))
    _npz(d / "data.npz", X=np.ones((3, 5)), Y=np.ones((2, 5)))
    (d / "run.yaml").write_text("layers: [W1.npy]\ndata: data.npz\n")
    return ["check", "run.yaml"]


def _fifo(d: Path) -> list[str]:
    os.mkfifo(d / "pipe.npz")
    return ["check", "pipe.npz"]


def _huge_int_yaml(d: Path) -> list[str]:
    (d / "run.yaml").write_text("weights: m.npz\nwidths: [" + "9" * 5000 + ", 2]\n")
    return ["check", "run.yaml"]


def _long_name(d: Path) -> list[str]:
    z = _not_critical()
    return ["check", _npz(d / "m.npz", W1=z["W1"], **{"W" + "1" * 5000: z["W2"]}, X=z["X"], Y=z["Y"])]


def _secret(d: Path, suffix: str = ".npz") -> list[str]:
    (d / f"secret{suffix}").write_text("root:x:0:0:root:/root:/bin/bash\n")
    _npz(d / "d.npz", X=np.ones((1, 4)), Y=np.ones((1, 4)))
    return ["check", f"secret{suffix}"] + (["--data", "d.npz"] if suffix != ".npz" else [])


CASES: dict[str, Case] = {
    # 2. impossible or overflowing statistics
    "syy-scaled-down": Case(lambda d: ["check", _npz(
        d / "s.npz", W1=_not_critical()["W1"], W2=_not_critical()["W2"],
        **{**_stats_of(_not_critical()["X"], _not_critical()["Y"]),
           "syy": np.array(1e-3 * float(np.sum(_not_critical()["Y"] ** 2)))})], "s.npz"),
    "Y-overflows-syy": Case(lambda d: ["check", "w.npz", "--data", _npz(
        d / "big.npz", X=_not_critical()["X"], Y=1e160 * _not_critical()["Y"])]
        if _npz(d / "w.npz", W1=_not_critical()["W1"], W2=_not_critical()["W2"]) else [], "big.npz"),
    "X-overflows-gram": Case(lambda d: ["check", _npz(
        d / "g.npz", W1=_not_critical()["W1"], W2=_not_critical()["W2"],
        X=1e170 * _not_critical()["X"], Y=_not_critical()["Y"])], "g.npz"),
    "stats-of-overflowing-X": Case(lambda d: ["stats", _npz(
        d / "x.npz", X=1e200 * _not_critical()["X"], Y=_not_critical()["Y"]), "-o", "out.npz"], "x.npz"),
    "zero-Y": Case(lambda d: ["landscape", _npz(d / "z.npz", X=np.ones((3, 5)), Y=np.zeros((2, 5))),
                              "--widths", "3,2"], "z.npz"),
    # 3. outputs that would destroy inputs or are not regular files
    "witness-over-model": Case(lambda d: ["check", "m.npz", "--witness", "m.npz"]
                               if (d / "m.npz").write_bytes((SAMPLES / "strict_saddle.npz").read_bytes())
                               else [], "m.npz"),
    "optimum-over-data": Case(lambda d: ["landscape", _npz(
        d / "d.npz", X=_not_critical()["X"], Y=_not_critical()["Y"]), "--widths", "4,3,3",
        "--save-optimum", "./d.npz"], "d.npz"),
    "stats-over-input": Case(lambda d: ["stats", _npz(
        d / "d.npz", X=_not_critical()["X"], Y=_not_critical()["Y"]), "-o", "d.npz"], "d.npz"),
    "junit-over-model": Case(lambda d: ["check", "m.npz", "--junit-xml", "m.npz"]
                             if (d / "m.npz").write_bytes((SAMPLES / "strict_saddle.npz").read_bytes())
                             else [], "m.npz"),
    "witness-into-directory": Case(lambda d: ["check", "m.npz", "--witness", "."]
                                   if (d / "m.npz").write_bytes((SAMPLES / "strict_saddle.npz").read_bytes())
                                   else [], "."),
    "witness-missing-parent": Case(lambda d: ["check", "m.npz", "--witness", "no/such/w.npz"]
                                   if (d / "m.npz").write_bytes((SAMPLES / "strict_saddle.npz").read_bytes())
                                   else [], "no/such/w.npz"),
    "witness-over-symlink": Case(lambda d: ["check", "m.npz", "--witness", "link.npz"]
                                 if (d / "m.npz").write_bytes((SAMPLES / "strict_saddle.npz").read_bytes())
                                 and not os.symlink("m.npz", d / "link.npz") else [], "link.npz"),
    "witness-over-fifo": Case(lambda d: ["check", "m.npz", "--witness", "out.fifo"]
                              if (d / "m.npz").write_bytes((SAMPLES / "strict_saddle.npz").read_bytes())
                              and not os.mkfifo(d / "out.fifo") else [], "out.fifo"),
    # 4. the memory guard on every path
    "npy-v3-header-bomb": Case(_v3_member_bomb, "bomb.npz"),
    "deflated-pt": Case(_deflated_pt, "model.pt"),
    "manifest-npy-layer-declares-13GB": Case(_huge_npy_layer, "W1.npy"),
    "sparse-weight-names": Case(lambda d: ["check", _npz(
        d / "m.npz", W1=np.eye(2), W3000000000=np.eye(2), X=np.eye(2), Y=np.eye(2))], "m.npz"),
    "landscape-huge-width": Case(lambda d: ["landscape", _npz(
        d / "d.npz", X=_not_critical()["X"], Y=_not_critical()["Y"]),
        "--widths", "4,20000000,3", "--save-optimum", "opt.npz"], "d.npz"),
    "landscape-trials-huge-width": Case(lambda d: ["landscape", _npz(
        d / "d.npz", X=_not_critical()["X"], Y=_not_critical()["Y"]),
        "--widths", "4,10000000,3", "--trials", "1"], "d.npz"),
    "recheck-huge-witness": Case(lambda d: ["recheck", "bomb.npz", "--against", "m.npz"]
                                 if (d / "m.npz").write_bytes((SAMPLES / "strict_saddle.npz").read_bytes())
                                 and _v3_member_bomb(d) else [], "bomb.npz"),
    "stats-npy-pair-huge-dx": Case(lambda d: ["stats", "X.npy", "Y.npy", "-o", "s.npz"]
                                   if not np.save(d / "X.npy", np.ones((60_000, 1)))
                                   and not np.save(d / "Y.npy", np.ones((1, 1))) else [], "X.npy"),
    # 5. inputs that would block
    "fifo-as-weights": Case(_fifo, "pipe.npz"),
    "dev-stdin-as-data": Case(lambda d: ["check", "m.npz", "--data", "/dev/stdin"]
                              if (d / "m.npz").write_bytes((SAMPLES / "strict_saddle.npz").read_bytes())
                              else [], "/dev/stdin"),
    "fifo-as-manifest": Case(lambda d: ["landscape", "run.yaml"] if not os.mkfifo(d / "run.yaml") else [],
                             "run.yaml"),
    # 6. crashes
    "yaml-5000-digit-int": Case(_huge_int_yaml, "run.yaml"),
    "5000-digit-array-name": Case(_long_name, "m.npz"),
    "path-over-255-bytes": Case(lambda d: ["check", "x" * 300 + ".npz"], "xxxx"),
    "recheck-nan-radius": Case(lambda d: ["recheck", _npz(
        d / "w.npz", W1=np.eye(2), W2=np.eye(2), meta_radius=np.array(np.nan)), "--against",
        _npz(d / "m.npz", W1=np.eye(2), W2=np.eye(2), X=np.eye(2), Y=np.eye(2))], "w.npz"),
    "landscape-negative-seed": Case(lambda d: ["landscape", _npz(
        d / "d.npz", X=_not_critical()["X"], Y=_not_critical()["Y"]), "--widths", "4,3",
        "--trials", "1", "--seed", "-1"], "--seed must be >= 0"),
    # 7. leaks and silent surprises
    "no-echo-of-file-bytes": Case(_secret, "secret.npz"),
    "no-echo-of-file-bytes-pt": Case(lambda d: _secret(d, ".pt"), "secret.pt"),
    "no-echo-of-file-bytes-safetensors": Case(lambda d: _secret(d, ".safetensors"), "secret.safetensors"),
    "duplicate-yaml-key": Case(lambda d: ["check", "run.yaml"] if (d / "run.yaml").write_text(
        "weights: a.npz\nweights: b.npz\n") else [], "run.yaml"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_input_is_one_line_exit_2(tmp_path: Path, name: str) -> None:
    case = CASES[name]
    args = case.make(tmp_path)
    assert args
    before = _digest(tmp_path)
    result = run(args, tmp_path)
    after = _digest(tmp_path)
    assert_refused(result, case.names, before, after)
    if name.startswith("no-echo-of-file-bytes"):
        assert "root" not in result.stderr


@pytest.mark.parametrize("where", ["in-file", "data", "manifest"])
def test_meta_eps_cannot_forge_a_certificate(tmp_path: Path, where: str) -> None:
    """not_critical.npz rebuilt as statistics claiming meta_eps = 0.99 stays not critical."""
    z = _not_critical()
    stats = {**_stats_of(z["X"], z["Y"]), "meta_eps": np.array(0.99)}
    if where == "in-file":
        args = ["check", _npz(tmp_path / "f.npz", W1=z["W1"], W2=z["W2"], **stats)]
    else:
        _npz(tmp_path / "w.npz", W1=z["W1"], W2=z["W2"])
        _npz(tmp_path / "s.npz", **stats)
        args = ["check", "w.npz", "--data", "s.npz"]
        if where == "manifest":
            (tmp_path / "run.yaml").write_text("weights: w.npz\nstats: s.npz\n")
            args = ["check", "run.yaml"]
    before = _digest(tmp_path)
    result = run([*args, "--require", "global", "-f", "json"], tmp_path)
    assert result.returncode == 4, result.stderr
    assert '"verdict": "not_critical"' in result.stdout
    assert _digest(tmp_path) == before


def test_a_fifo_in_a_batch_is_its_own_row(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.npz")
    (tmp_path / "good.npz").write_bytes((SAMPLES / "global_full_rank.npz").read_bytes())
    (tmp_path / "run.yaml").write_text("weights: good.npz\nwidths: [" + "7" * 5000 + "]\n")
    result = run(["check", "good.npz", "pipe.npz", "run.yaml", "-f", "json", "--junit-xml", "j.xml"],
                 tmp_path)
    assert result.returncode == 2
    assert '"status": "passed"' in result.stdout
    assert "pipe.npz: is a FIFO" in result.stderr and "run.yaml: a value cannot be read" in result.stderr
    assert (tmp_path / "j.xml").read_text().count("<testcase") == 3


def test_many_safetensors_names_in_bounded_time(tmp_path: Path) -> None:
    """100,000 tensor names: refused (they are not layers) within the subprocess timeout,
    not after minutes of quadratic name handling."""
    safetensors_numpy = pytest.importorskip("safetensors.numpy")
    tensors = {f"layers.{i}.weight": np.zeros((1, 1), dtype=np.float32) for i in range(100_000)}
    tensors["junk"] = np.zeros(1, dtype=np.float32)
    safetensors_numpy.save_file(tensors, str(tmp_path / "many.safetensors"))
    _npz(tmp_path / "d.npz", X=np.ones((1, 4)), Y=np.ones((1, 4)))
    before = _digest(tmp_path)
    result = run(["check", "many.safetensors", "--data", "d.npz"], tmp_path)
    assert_refused(result, "many.safetensors", before, _digest(tmp_path))
    assert "'junk'" in result.stderr


def test_npy_truncated_while_streaming_is_an_input_error(tmp_path: Path) -> None:
    """The SIGBUS of a memory-mapped file cut short mid-read: now a short read, one line."""
    np.save(tmp_path / "X.npy", np.ones((3, 4000)))
    np.save(tmp_path / "Y.npy", np.ones((2, 4000)))
    pair = open_pair(tmp_path / "X.npy", tmp_path / "Y.npy", None, None)
    size = (tmp_path / "X.npy").stat().st_size
    with open(tmp_path / "X.npy", "r+b") as f:  # the file shrinks after its header was read
        f.truncate(size // 2)
    with pytest.raises(InputError, match=r"X\.npy: ended after \d+ bytes while being read"):
        pair_statistics(pair, chunk_size=100)


def test_truncated_npy_is_refused_before_reading(tmp_path: Path) -> None:
    np.save(tmp_path / "X.npy", np.ones((3, 4000)))
    np.save(tmp_path / "Y.npy", np.ones((2, 4000)))
    raw = (tmp_path / "X.npy").read_bytes()
    (tmp_path / "X.npy").write_bytes(raw[: len(raw) // 2])
    before = _digest(tmp_path)
    result = run(["stats", "X.npy", "Y.npy", "-o", "s.npz"], tmp_path)
    assert_refused(result, "X.npy", before, _digest(tmp_path))
    assert "truncated" in result.stderr


def test_loader_hands_the_core_no_looser_precision_than_the_dtypes() -> None:
    z = _not_critical()
    stats = _stats_of(z["X"], z["Y"])
    for claim in (0.99, 0.5, 1e-3):
        got = data_statistics({**stats, "meta_eps": np.array(claim)}, "s.npz", dims=(4, 3))
        assert got.eps == float(np.finfo(np.float64).eps)


def test_torch_floor_has_no_known_weights_only_bypass() -> None:
    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    assert 'torch = ["torch>=2.10"]' in text


def test_cli_output_on_a_read_only_file_system(tmp_path: Path) -> None:
    """`stats -o` into a read-only mount (root only; skipped elsewhere): one line, exit 2."""
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() != 0 or subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)], capture_output=True
    ).returncode != 0:
        pytest.skip("cannot mount a read-only tmpfs here")
    try:
        _npz(tmp_path / "d.npz", X=_not_critical()["X"], Y=_not_critical()["Y"])
        before = _digest(tmp_path)
        result = run(["stats", "d.npz", "-o", "ro/s.npz"], tmp_path)
        assert_refused(result, "ro/s.npz: cannot write the statistics: read-only file system",
                       before, _digest(tmp_path))
        assert list(ro.iterdir()) == []
    finally:
        subprocess.run(["umount", str(ro)], check=False)
