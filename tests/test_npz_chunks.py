"""Raw ``.npz`` data read in chunks (issue 14, item 3; ``dlcert/npz_chunks.py``).

* The chunked statistics equal the whole-array ones up to the order of the float64 sums, held to
  the rigorous bound of that reordering, for every storage: layouts rows and columns, C and
  Fortran order, float32 and float64, stored and deflated members, 1-d arrays, any chunk size.
* The checks and their messages are those of arrays read whole (non-finite values counted over
  the whole array with the first index as stored, shapes, dtypes, square layouts).
* A damaged or lying member is one line naming the file, exit 2 (CRC of a stored member checked
  across out-of-order reads, a member past the end of the file, a file cut during the pass).
* ``dlcert check`` of an ``.npz`` larger than the memory limit allows for copies succeeds, with
  a peak resident set well below the data's size (a child process; ``VmHWM`` of its own).
"""

from __future__ import annotations

import os
import re
import resource
import struct
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from dlcert.errors import InputError
from dlcert.io import data_statistics, read_npz, read_npz_data
from dlcert.npz_chunks import NpzMember, chunked_statistics, crc32_combine
from dlcert.statistics import Statistics
from dlcert.validation import check_data

U = 2.0**-53  # unit roundoff of float64


def _save(path: Path, compressed: bool, **arrays: np.ndarray) -> Path:
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _stored_as(X: np.ndarray, layout: str, fortran: bool) -> np.ndarray:
    """``X`` (d, m) as a file stores it in ``layout`` and memory order."""
    S = X if layout == "columns" else X.T
    return np.asfortranarray(S) if fortran else np.ascontiguousarray(S)


def _reorder_bound(X: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Two float64 sums of the same ``m`` products, in any orders, differ by at most
    ``2 gamma_m sum |x_ik y_jk|`` with ``gamma_m = m u / (1 - m u)`` (Higham, Accuracy and
    Stability, 3.1): the bound for the entries of ``X X^T``, ``Y X^T`` and for ``||Y||^2``."""
    m = X.shape[1]
    g = 2 * m * U / (1 - m * U)
    aX, aY = np.abs(X), np.abs(Y)
    return g * (aX @ aX.T), g * (aY @ aX.T), g * float(np.sum(aY * aY))


def _assert_close(got: Statistics, ref: Statistics, X: np.ndarray, Y: np.ndarray) -> None:
    bxx, byx, byy = _reorder_bound(X, Y)
    assert got.m == ref.m and got.eps == ref.eps
    assert np.all(np.abs(got.Sxx - ref.Sxx) <= bxx)
    assert np.all(np.abs(got.Syx - ref.Syx) <= byx)
    assert abs(got.syy - ref.syy) <= byy


def test_crc32_combine_matches_zlib() -> None:
    rng = np.random.default_rng(0)
    for n1, n2 in [(0, 0), (0, 5), (5, 0), (1, 1), (17, 4096), (4096, 17), (100_000, 3)]:
        a, b = rng.bytes(n1), rng.bytes(n2)
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("fortran", [False, True], ids=["C", "F"])
@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_chunked_statistics_equal_whole_arrays(
    tmp_path: Path, layout: str, fortran: bool, dtype: type, compressed: bool
) -> None:
    rng = np.random.default_rng(1)
    dx, dy, m = 7, 3, 1001
    X = (rng.standard_normal((dx, m)) * 3 + 1).astype(dtype)
    Y = rng.standard_normal((dy, m)).astype(dtype)
    path = _save(tmp_path / "d.npz", compressed, X=_stored_as(X, layout, fortran),
                 Y=_stored_as(Y, layout, fortran))
    lazy = read_npz_data(path)
    assert isinstance(lazy["X"], NpzMember) and isinstance(lazy["Y"], NpzMember)
    assert lazy["X"].stored is not compressed
    whole = data_statistics(read_npz(path), str(path), dims=(dx, dy))  # in memory
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    assert whole.eps == float(max(np.finfo(dtype).eps, U * 2))
    for chunk in (1, 10, 333, m, None):
        got = chunked_statistics(lazy["X"], lazy["Y"], dx, dy, None, str(path), chunk_size=chunk)
        _assert_close(got, whole, X64, Y64)
    # the public entry: same statistics, same precision, layout inferred or given
    for lay in (None, layout):
        _assert_close(data_statistics(read_npz_data(path), str(path), dims=(dx, dy), layout=lay),
                      whole, X64, Y64)


def test_chunked_reader_of_arrays_in_memory_matches() -> None:
    """The same pass over arrays given in memory (what the readers of a member must equal)."""
    rng = np.random.default_rng(2)
    X, Y = rng.standard_normal((5, 400)), rng.standard_normal((2, 400))
    ref = Statistics.from_data(X, Y)
    for chunk in (1, 3, 400):
        _assert_close(chunked_statistics(X.T.copy(), Y.T.copy(), 5, 2, "rows", "mem", chunk_size=chunk),
                      ref, X, Y)


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_one_feature_stored_flat(tmp_path: Path, compressed: bool) -> None:
    rng = np.random.default_rng(3)
    x, Y = rng.standard_normal(500), rng.standard_normal((2, 500))
    path = _save(tmp_path / "flat.npz", compressed, X=x, Y=Y)
    lazy = read_npz_data(path)
    got = chunked_statistics(lazy["X"], lazy["Y"], 1, 2, None, str(path), chunk_size=64)
    _assert_close(got, Statistics.from_data(x[None, :], Y), x[None, :], Y)


def test_square_data_is_read_whole_with_the_same_answer(tmp_path: Path) -> None:
    """Square data fits both layouts: the values decide (as for arrays read whole)."""
    rng = np.random.default_rng(4)
    A = rng.standard_normal((4, 4))
    sym = _save(tmp_path / "sym.npz", False, X=A + A.T, Y=np.eye(4))
    lazy = read_npz_data(sym)
    got = chunked_statistics(lazy["X"], lazy["Y"], 4, 4, None, str(sym))
    ref = Statistics.from_data(A + A.T, np.eye(4))
    np.testing.assert_array_equal(got.Sxx, ref.Sxx)
    bad = _save(tmp_path / "sq.npz", False, X=A, Y=np.eye(4))
    with pytest.raises(InputError) as chunked:
        data_statistics(read_npz_data(bad), str(bad), dims=(4, 4))
    with pytest.raises(InputError) as whole:
        data_statistics(read_npz(bad), str(bad), dims=(4, 4))
    assert str(chunked.value) == str(whole.value)
    assert "cannot tell the data layout" in str(chunked.value)


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_non_finite_message_is_that_of_the_whole_array(tmp_path: Path, layout: str, compressed: bool) -> None:
    """Count over the whole array, first index as stored, even when the values sit in several
    chunks and the first one in file order is not in the first chunk read."""
    rng = np.random.default_rng(5)
    X, Y = rng.standard_normal((6, 50)), rng.standard_normal((2, 50))
    X[4, 3] = np.nan  # early sample, late feature
    X[1, 40] = np.inf  # late sample, early feature
    X[5, 41] = np.nan
    Y[0, 7] = -np.inf  # Y too: X is reported, as when read whole
    path = _save(tmp_path / "nan.npz", compressed, X=_stored_as(X, layout, False),
                 Y=_stored_as(Y, layout, False))
    with pytest.raises(InputError) as whole:
        check_data(*(read_npz(path)[k] for k in ("X", "Y")), 6, 2, None, str(path))
    lazy = read_npz_data(path)
    for chunk in (1, 7, 50):
        with pytest.raises(InputError) as chunked:
            chunked_statistics(lazy["X"], lazy["Y"], 6, 2, None, str(path), chunk_size=chunk)
        assert str(chunked.value) == str(whole.value)
    assert "X has 3 non-finite value(s) (2 NaN, 1 Inf) among 300" in str(whole.value)
    first = "(1, 40)" if layout == "columns" else "(3, 4)"
    assert f"first at index {first}" in str(whole.value)


def test_shape_and_dtype_messages_are_unchanged(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    cases = {
        "bool": {"X": np.ones((3, 10), dtype=bool), "Y": np.ones((2, 10))},
        "complex": {"X": np.ones((3, 10), dtype=np.complex128), "Y": np.ones((2, 10))},
        "3d": {"X": np.ones((3, 10, 1)), "Y": np.ones((2, 10))},
        "width": {"X": np.ones((4, 10)), "Y": np.ones((2, 10))},
        "samples": {"X": np.ones((3, 10)), "Y": np.ones((2, 11))},
        "empty": {"X": np.ones((3, 0)), "Y": np.ones((2, 0))},
        "flat": {"X": rng.standard_normal(10), "Y": np.ones((2, 10))},
    }
    for name, arrays in cases.items():
        path = _save(tmp_path / f"{name}.npz", False, **arrays)
        with pytest.raises(InputError) as whole:
            data_statistics(read_npz(path), str(path), dims=(3, 2))
        with pytest.raises(InputError) as chunked:
            data_statistics(read_npz_data(path), str(path), dims=(3, 2))
        assert str(chunked.value) == str(whole.value), name


# ---------------------------------------------------------------------------------------------
# damaged and lying members


def _member_start(data: bytes, name: str) -> int:
    """Offset of member ``name``'s first byte (its .npy magic) in the archive ``data``."""
    at = data.index(b"PK\x03\x04")  # first local header
    while True:
        n, e = struct.unpack("<HH", data[at + 26 : at + 30])
        fname = data[at + 30 : at + 30 + n].decode()
        start = at + 30 + n + e
        if fname == name:
            return start
        at = data.index(b"PK\x03\x04", start)


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_flipped_byte_in_a_stored_member_fails_the_crc(tmp_path: Path, layout: str) -> None:
    """Rows: the CRC runs over the reads in file order; columns (C order): one read per feature
    per chunk, the per-segment CRCs combined in file order."""
    rng = np.random.default_rng(7)
    X, Y = rng.standard_normal((5, 300)), rng.standard_normal((2, 300))
    path = _save(tmp_path / "flip.npz", False, X=_stored_as(X, layout, False), Y=_stored_as(Y, layout, False))
    data = bytearray(path.read_bytes())
    data[_member_start(bytes(data), "X.npy") + 128 + 8 * 777 + 2] ^= 0x01  # a mantissa bit of X
    path.write_bytes(bytes(data))
    lazy = read_npz_data(path)
    for chunk in (7, 300):
        with pytest.raises(InputError, match=r"flip\.npz: corrupt or truncated \.npz archive "
                                             r"\(Bad CRC-32 for member X\)"):
            chunked_statistics(lazy["X"], lazy["Y"], 5, 2, None, str(path), chunk_size=chunk)
    with pytest.raises(InputError, match="CRC"):
        read_npz(path)  # the same file read whole: zipfile's CRC check


def test_flipped_byte_in_a_deflated_member(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    path = _save(tmp_path / "z.npz", True, X=rng.standard_normal((300, 5)), Y=rng.standard_normal((300, 2)))
    data = bytearray(path.read_bytes())
    data[_member_start(bytes(data), "X.npy") + 2000] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"z\.npz: corrupt or truncated \.npz archive"):
        data_statistics(read_npz_data(path), str(path), dims=(5, 2))


def _lying_sizes(src: Path, dst: Path, m: int, m_claimed: int) -> None:
    """``dst``: ``src`` (members X (m, 5), Y (m, 2)) with each .npy header and its zip directory
    entry claiming ``m_claimed`` samples (same digit count) while the bytes hold ``m``: headers,
    directory and shapes all agree, the file is too short."""
    data = bytearray(src.read_bytes())
    cd = data.index(b"PK\x01\x02")  # central directory: X.npy, then Y.npy
    for d in (5, 2):
        old, new = f"({m}, {d})".encode(), f"({m_claimed}, {d})".encode()
        assert len(old) == len(new)
        at = data.index(old)
        data[at : at + len(old)] = new
        extra = (m_claimed - m) * d * 8
        csize, usize = struct.unpack("<II", data[cd + 20 : cd + 28])
        data[cd + 20 : cd + 28] = struct.pack("<II", csize + extra, usize + extra)
        n, e, c = struct.unpack("<HHH", data[cd + 28 : cd + 34])
        cd += 46 + n + e + c
    dst.write_bytes(bytes(data))


def test_member_past_the_end_of_the_file(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    src = _save(tmp_path / "ok.npz", False, X=rng.standard_normal((100, 5)), Y=rng.standard_normal((100, 2)))
    bad = tmp_path / "lie.npz"
    _lying_sizes(src, bad, 100, 900)
    with pytest.raises(InputError, match=r"lie\.npz: corrupt or truncated \.npz archive \(member X "
                                         r"ends past"):
        data_statistics(read_npz_data(bad), str(bad), dims=(5, 2))


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_file_cut_during_the_pass(tmp_path: Path, compressed: bool) -> None:
    """Headers read, then the file shrinks (another process rewrote it): one line, not a crash."""
    rng = np.random.default_rng(10)
    path = _save(tmp_path / "cut.npz", compressed, X=rng.standard_normal((4000, 5)),
                 Y=rng.standard_normal((4000, 2)))
    lazy = read_npz_data(path)
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 3)
    with pytest.raises(InputError, match=r"cut\.npz: corrupt or truncated \.npz archive") as exc:
        chunked_statistics(lazy["X"], lazy["Y"], 5, 2, None, str(path), chunk_size=100)
    assert "\n" not in str(exc.value)


# ---------------------------------------------------------------------------------------------
# through the CLI, in a child process


ADDRESS_SPACE = 3 * 2**30  # numpy + scipy import needs about 1 GiB of address space


def _limit() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


_PEAK = """
import atexit, runpy, sys
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            sys.stderr.write('PEAK_KIB ' + line.split()[1] + '\\n')
atexit.register(_peak)
sys.argv = ['dlcert'] + sys.argv[1:]
runpy.run_module('dlcert', run_name='__main__', alter_sys=True)
"""


def _cli(args: list[str], cwd: Path, limit: str = "256M") -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``dlcert ARGS`` in a child bounded in memory; its result and its own peak RSS (KiB,
    ``VmHWM`` of the child's address space, which a fork does not inherit)."""
    env = {**os.environ, "DLCERT_MEMORY_LIMIT": limit, "OPENBLAS_NUM_THREADS": "1",
           "OMP_NUM_THREADS": "1", "NO_COLOR": "1"}
    res = subprocess.run([sys.executable, "-c", _PEAK, *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=300, preexec_fn=_limit, stdin=subprocess.DEVNULL)
    found = re.findall(r"^PEAK_KIB (\d+)$", res.stderr, flags=re.MULTILINE)
    res.stderr = re.sub(r"^PEAK_KIB \d+\n", "", res.stderr, flags=re.MULTILINE)
    return res, int(found[-1]) if found else -1


def _write_rows(path: Path, m: int, dx: int, dy: int, compression: int) -> None:
    """``X`` (m, dx), ``Y`` (m, dy) float64 written block by block (this process stays small)."""
    rng = np.random.default_rng(11)
    A = rng.standard_normal((dy, dx))
    with zipfile.ZipFile(path, "w", compression=compression, compresslevel=1 if compression else None) as zf:
        for name, d in (("X", dx), ("Y", dy)):
            with zf.open(f"{name}.npy", "w", force_zip64=True) as fp:
                header = {"descr": "<f8", "fortran_order": False, "shape": (m, d)}
                np.lib.format.write_array_header_1_0(fp, header)
                for a in range(0, m, 20_000):
                    r = np.random.default_rng([12, a]).standard_normal((min(m, a + 20_000) - a, dx))
                    fp.write((r if name == "X" else r @ A.T).tobytes())


@pytest.mark.parametrize("compressed", [False, True], ids=["stored", "deflated"])
def test_check_of_npz_larger_than_copies_allow(tmp_path: Path, compressed: bool) -> None:
    """A 320 MB npz under DLCERT_MEMORY_LIMIT=256M: loading it whole needs about 640 MB by the
    guard's estimate (and held three copies, about 1 GB), so it was refused; read in chunks it
    is certified, with a peak resident set below the data's size."""
    m, dx, dy = 200_000, 190, 10
    data = tmp_path / "big.npz"
    _write_rows(data, m, dx, dy, zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED)
    nbytes = m * (dx + dy) * 8
    rng = np.random.default_rng(13)
    np.savez(tmp_path / "w.npz", W1=rng.standard_normal((20, dx)), W2=rng.standard_normal((dy, 20)))
    res, peak = _cli(["check", "w.npz", "--data", "big.npz", "-f", "json"], tmp_path)
    assert res.returncode == 4, res.stderr  # a random point: not critical, certified as such
    assert '"not_critical"' in res.stdout
    print(f"peak of check: {peak} KiB for {nbytes} bytes of data")
    assert 0 < peak * 1024 < 0.75 * nbytes, (peak, nbytes)
    res, peak = _cli(["stats", "big.npz", "-o", "s.npz"], tmp_path)
    assert res.returncode == 0, res.stderr
    print(f"peak of stats: {peak} KiB for {nbytes} bytes of data")
    assert 0 < peak * 1024 < 0.75 * nbytes, (peak, nbytes)
    S = np.load(tmp_path / "s.npz")
    assert int(S["m"]) == m and S["Sxx"].shape == (dx, dx)


def _refused(res: subprocess.CompletedProcess[str], name: str) -> None:
    lines = res.stderr.splitlines()
    assert res.returncode == 2, res.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("dlcert: error: ") and name in lines[0], res.stderr
    assert "Traceback" not in res.stderr


def test_hostile_members_through_the_cli(tmp_path: Path) -> None:
    rng = np.random.default_rng(14)
    np.savez(tmp_path / "w.npz", W1=rng.standard_normal((3, 5)), W2=rng.standard_normal((2, 3)))
    ok = _save(tmp_path / "ok.npz", False, X=rng.standard_normal((100, 5)), Y=rng.standard_normal((100, 2)))
    _lying_sizes(ok, tmp_path / "lying.npz", 100, 900)  # header and directory lie together
    head = bytearray(ok.read_bytes())  # header alone lies: more samples than the member holds
    at = head.index(b"(100, 5)")
    head[at : at + 8] = b"(900, 5)"
    (tmp_path / "header.npz").write_bytes(bytes(head))
    flip = bytearray(ok.read_bytes())
    flip[_member_start(bytes(flip), "X.npy") + 128 + 333] ^= 0x01
    (tmp_path / "flip.npz").write_bytes(bytes(flip))
    whole = ok.read_bytes()
    (tmp_path / "trunc.npz").write_bytes(whole[: len(whole) // 2])
    X = rng.standard_normal((100, 5))
    X[77, 1] = np.nan
    _save(tmp_path / "nan.npz", False, X=X, Y=rng.standard_normal((100, 2)))
    for name, expect in [("lying.npz", "ends past the end of the file"),
                         ("header.npz", "declares shape (900, 5)"),
                         ("flip.npz", "Bad CRC-32 for member X"),
                         ("trunc.npz", "corrupt or truncated"),
                         ("nan.npz", "X has 1 non-finite value(s) (1 NaN, 0 Inf) among 500, "
                                     "first at index (77, 1)")]:
        res, _ = _cli(["check", "w.npz", "--data", name], tmp_path)
        _refused(res, name)
        assert expect in res.stderr, res.stderr
        res, _ = _cli(["stats", name, "-o", "s.npz"], tmp_path)
        _refused(res, name)
        assert not (tmp_path / "s.npz").exists()
