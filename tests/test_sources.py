"""Data sources of ``dlcert stats``: every format gives the statistics of the whole; bad input is
one line naming the file, member and chunk; nothing deserialises objects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from datafiles import FORMATS, h5, parquet, write, zarr_store

from dlcert.engines import compute_statistics
from dlcert.errors import InputError
from dlcert.io import save_statistics
from dlcert.sources import expand_inputs, optional
from dlcert.statistics import Statistics
from dlcert.stats_merge import merge_statistics


def rel_diff(a: Statistics, b: Statistics) -> float:
    assert a.m == b.m and a.Sxx.shape == b.Sxx.shape and a.Syx.shape == b.Syx.shape
    return max(
        float(np.abs(a.Sxx - b.Sxx).max() / np.abs(b.Sxx).max()),
        float(np.abs(a.Syx - b.Syx).max() / np.abs(b.Syx).max()),
        abs(a.syy - b.syy) / b.syy,
    )


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    X = rng.standard_normal((5, 1000)) * np.array([[1.0], [3.0], [0.5], [10.0], [1e-3]])
    Y = rng.standard_normal((2, 5)) @ X + 0.1 * rng.standard_normal((2, 1000))
    return X, Y


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk", [None, 64])
def test_every_format_gives_the_whole_statistics(tmp_path: Path, data: tuple[np.ndarray, np.ndarray],
                                                 fmt: str, chunk: int | None) -> None:
    X, Y = data
    args, opts = write(fmt, tmp_path / fmt, X, Y)
    got = compute_statistics(args, chunk_size=chunk, **opts)
    assert (got.dx, got.dy, got.m) == (5, 2, 1000)
    assert got.eps == float(np.finfo(np.float64).eps)
    assert rel_diff(got, Statistics.from_data(X, Y)) <= 1e-13


def test_float32_column_sets_the_precision(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    parquet(tmp_path / "t.parquet", X, Y, x_dtype=np.float32)
    got = compute_statistics([tmp_path / "t.parquet"], x_columns="x0,x1,x2,x3,x4", y_columns="y0,y1")
    assert got.eps == float(np.finfo(np.float32).eps)
    X32 = X.astype(np.float32).astype(np.float64)
    assert rel_diff(got, Statistics.from_data(X32, Y)) <= 1e-13


def test_parquet_chunks_follow_row_groups(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    parquet(tmp_path / "t.parquet", X, Y, row_group_size=100)
    (src,) = expand_inputs([tmp_path / "t.parquet"], x_columns="x*", y_columns="y*")
    assert src.boundaries(250) == [(0, 200), (200, 400), (400, 600), (600, 800), (800, 1000)]  # type: ignore[union-attr]
    assert src.boundaries(1) == [(a, a + 100) for a in range(0, 1000, 100)]  # type: ignore[union-attr]


def test_columns_are_taken_in_table_order(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    parquet(tmp_path / "t.parquet", X, Y)
    a = compute_statistics([tmp_path / "t.parquet"], x_columns="x4,x0,x1,x2,x3", y_columns="y*")
    assert rel_diff(a, Statistics.from_data(X[[4, 0, 1, 2, 3]], Y)) <= 1e-13


@pytest.mark.parametrize(
    ("make", "opts", "match"),
    [
        (lambda d, X, Y: [str(d / "nope.h5")], {}, "nope.h5: no such file"),
        (lambda d, X, Y: h5(d / "a.h5", X=X) or [str(d / "a.h5")], {}, r"a.h5: no dataset /Y"),
        (lambda d, X, Y: h5(d / "a.h5", X=X, Y=Y[:, :10]) or [str(d / "a.h5")], {}, "share no sample axis"),
        (lambda d, X, Y: h5(d / "a.h5", X=X.astype(complex), Y=Y) or [str(d / "a.h5")], {},
         r"a.h5:/X has dtype complex128; expected real numbers"),
        (lambda d, X, Y: h5(d / "a.h5", X=np.array([b"ab", b"cd"]), Y=Y) or [str(d / "a.h5")], {},
         r"a.h5:/X has dtype \|S2"),
        (lambda d, X, Y: h5(d / "a.h5", X=X > 0, Y=Y) or [str(d / "a.h5")], {}, "a.h5:/X has dtype bool"),
        (lambda d, X, Y: zarr_store(d / "z.zarr", X=X) or [str(d / "z.zarr")], {}, r"z.zarr: no array Y"),
        (lambda d, X, Y: zarr_store(d / "z.zarr", X=X, Y=Y) or [f"{d}/z.zarr:X"], {}, "needs its Y array"),
        (lambda d, X, Y: parquet(d / "t.parquet", X, Y) or [str(d / "t.parquet")], {}, "needs --x-columns"),
        (lambda d, X, Y: parquet(d / "t.parquet", X, Y) or [str(d / "t.parquet")],
         {"x_columns": "x*", "y_columns": "z*"}, "--y-columns 'z\\*' matches no column"),
        (lambda d, X, Y: parquet(d / "t.parquet", X, Y) or [str(d / "t.parquet")],
         {"x_columns": "x*,y0", "y_columns": "y*"}, "in both"),
        (lambda d, X, Y: np.savez(d / "a.npz", X=X, Y=Y) or [str(d / "a.npz")],
         {"x_columns": "x*", "y_columns": "y*"}, "apply to Parquet inputs only"),
        (lambda d, X, Y: (d / "a.txt").write_text("x") and [str(d / "a.txt")], {}, "unknown data format"),
        (lambda d, X, Y: [f"{d}/nothing-*.parquet"], {}, "matches no file"),
        (lambda d, X, Y: (d / "s").mkdir()
         or ((d / "s" / "notes.txt").write_text("x") and [str(d / "s")]), {},
         "unknown file notes.txt"),
        (lambda d, X, Y: (d / "s").mkdir() or np.save(d / "s" / "x_1.npy", X) or [str(d / "s")], {},
         "without its Y partner"),
        (lambda d, X, Y: (d / "s").mkdir() or np.save(d / "s" / "data.npy", X) or [str(d / "s")], {},
         "holds X or Y"),
        (lambda d, X, Y: (np.savez(d / "a.npz", X=X, Y=Y), h5(d / "b.h5", X=X[:3], Y=Y))
         and [str(d / "a.npz"), str(d / "b.h5")], {}, r"b.h5:/X \+ .*do not give dx = 5, dy = 2"),
    ],
)
def test_bad_inputs_are_one_line(tmp_path: Path, data: tuple[np.ndarray, np.ndarray], make, opts: dict,  # type: ignore[no-untyped-def]
                                 match: str) -> None:
    X, Y = data
    args = make(tmp_path, X, Y)
    with pytest.raises(InputError, match=match) as exc:
        compute_statistics(args, **opts)
    assert "\n" not in str(exc.value)


def test_parquet_string_and_null_columns_are_refused(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"x": ["a", "b"], "y": [1.0, 2.0]}), tmp_path / "s.parquet")
    with pytest.raises(InputError, match=r"s.parquet: column 'x' has type string; expected real numbers"):
        compute_statistics([tmp_path / "s.parquet"], x_columns="x", y_columns="y")
    pq.write_table(pa.table({"x": [1.0, None, 3.0], "y": [1.0, 2.0, 3.0]}), tmp_path / "n.parquet")
    with pytest.raises(InputError, match=r"n.parquet \(chunk 0: rows 0:3\): column 'x' has 1 null"):
        compute_statistics([tmp_path / "n.parquet"], x_columns="x", y_columns="y")


def test_zarr_string_array_is_refused_before_reading(tmp_path: Path) -> None:
    import zarr

    g = zarr.open_group(str(tmp_path / "s.zarr"), mode="w")
    g.create_array("X", shape=(3,), dtype=str)
    g.create_array("Y", data=np.ones(3))
    with pytest.raises(InputError, match=r"s.zarr:X has dtype .*expected real numbers"):
        compute_statistics([tmp_path / "s.zarr"])


@pytest.mark.parametrize("fmt", ["h5", "zarr", "parquet", "npy_rows"])
def test_non_finite_value_names_file_member_and_chunk(tmp_path: Path, data: tuple[np.ndarray, np.ndarray],
                                                      fmt: str) -> None:
    X, Y = data
    Y = Y.copy()
    Y[1, 700] = np.inf
    args, opts = write(fmt, tmp_path, X, Y)
    with pytest.raises(InputError) as exc:
        compute_statistics(args, chunk_size=100, **opts)
    msg = str(exc.value)
    assert "Y" in msg and ("non-finite" in msg) and "\n" not in msg
    if fmt == "npy_rows":
        assert "Y.npy" in msg and "sample 700" in msg
    elif fmt == "parquet":
        assert "t.parquet (chunk" in msg and "rows 679:776" in msg  # row groups of 97
    else:
        assert "chunk 7: samples 700:800" in msg
        assert ("data.h5:/Y" if fmt == "h5" else "data.zarr:Y") in msg


def test_corrupt_shard_fails_the_pass_with_its_name(tmp_path: Path,
                                                    data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    args, _ = write("mixed_shards", tmp_path / "d", X, Y)
    chunk = next(p for p in sorted((tmp_path / "d" / "s1.zarr" / "X").rglob("*")) if p.is_file()
                 and p.name != "zarr.json")
    chunk.write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match=r"s1.zarr:X \(chunk 0: samples 0:\d+\): cannot read X") as exc:
        compute_statistics(args)
    assert "\n" not in str(exc.value)
    (tmp_path / "d" / "s0.h5").write_bytes(b"not hdf5")
    with pytest.raises(InputError, match=r"s0.h5:/X: cannot read the array"):
        compute_statistics(args)


def test_merge_is_the_sum(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    save_statistics(tmp_path / "a.npz", Statistics.from_data(X[:, :300], Y[:, :300]))
    save_statistics(tmp_path / "b.npz", Statistics.from_data(X[:, 300:], Y[:, 300:]))
    got = merge_statistics([tmp_path / "a.npz", tmp_path / "b.npz"])
    assert rel_diff(got, Statistics.from_data(X, Y)) <= 1e-13


def test_merge_refuses_inconsistent_files(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    save_statistics(tmp_path / "a.npz", Statistics.from_data(X[:, :300], Y[:, :300]))
    save_statistics(tmp_path / "small.npz", Statistics.from_data(X[:3, 300:], Y[:, 300:]))
    f32 = Statistics.from_data(X[:, 300:], Y[:, 300:], eps=float(np.finfo(np.float32).eps))
    save_statistics(tmp_path / "f32.npz", f32)
    np.savez(tmp_path / "raw.npz", X=X, Y=Y)
    with pytest.raises(InputError, match=r"small.npz: has dx = 3, dy = 2 but .*a.npz has dx = 5"):
        merge_statistics([tmp_path / "a.npz", tmp_path / "small.npz"])
    # A statistics file's meta_eps may only tighten what its float64 arrays imply (issue 15), so a
    # claimed float32 precision is not a mismatch: both files are float64 statistics.
    mixed = merge_statistics([tmp_path / "a.npz", tmp_path / "f32.npz"])
    assert mixed.eps == float(np.finfo(np.float64).eps) and mixed.m == 1000
    with pytest.raises(InputError, match="given twice"):
        merge_statistics([tmp_path / "a.npz", tmp_path / ".." / tmp_path.name / "a.npz"])
    with pytest.raises(InputError, match=r"raw\.npz: holds raw data"):
        merge_statistics([tmp_path / "a.npz", tmp_path / "raw.npz"])
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(InputError, match=r"bad\.npz"):
        merge_statistics([tmp_path / "a.npz", tmp_path / "bad.npz"])


def test_missing_extra_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(InputError, match=r"pip install 'dlcert\[hdf5\]'"):
        optional("h5py")


def test_core_imports_no_optional_package() -> None:
    code = ("import sys, dlcert, dlcert.cli, dlcert.engines, dlcert.sources, dlcert.stats_merge; "
            "print(sorted(m for m in ('dask', 'distributed', 'zarr', 'h5py', 'pyarrow') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


class _Bomb:
    """Unpickling this creates a file: evidence that something deserialised an object."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_zarr_v2_object_array_with_pickle_codec_is_never_decoded(tmp_path: Path) -> None:
    import json
    import pickle

    store, marker = tmp_path / "evil.zarr", tmp_path / "unpickled"
    (store / "X").mkdir(parents=True)
    (store / "Y").mkdir()
    (store / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
    meta = {"chunks": [3], "compressor": None, "fill_value": None, "order": "C", "shape": [3],
            "zarr_format": 2}
    (store / "X" / ".zarray").write_text(json.dumps(
        {**meta, "dtype": "|O", "filters": [{"id": "pickle", "protocol": 4}]}))
    (store / "X" / "0").write_bytes(pickle.dumps(np.array([_Bomb(marker)] * 3, dtype=object)))
    (store / "Y" / ".zarray").write_text(json.dumps({**meta, "dtype": "<f8", "filters": None}))
    (store / "Y" / "0").write_bytes(np.ones(3).tobytes())
    for args in ([store], [f"{store}:X", f"{store}:Y"]):
        with pytest.raises(InputError, match=r"evil\.zarr:X") as exc:
            compute_statistics(args)
        assert "\n" not in str(exc.value)
    assert not marker.exists()


def test_spark_style_parquet_directory_and_h5_groups(tmp_path: Path,
                                                     data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    out = tmp_path / "out.parquet"  # what df.write.parquet("out.parquet") leaves: a directory
    out.mkdir()
    parquet(out / "part-00000-abc.snappy.parquet", X[:, :600], Y[:, :600])
    parquet(out / "part-00001-abc.snappy.parquet", X[:, 600:], Y[:, 600:])
    (out / "_SUCCESS").write_text("")
    (out / ".part-00000-abc.snappy.parquet.crc").write_text("")
    got = compute_statistics([out], x_columns="x*", y_columns="y*")
    assert rel_diff(got, Statistics.from_data(X, Y)) <= 1e-13
    h5(tmp_path / "g.h5", **{"grp/X": X, "Y": Y})
    with pytest.raises(InputError, match=r"g\.h5:/grp is a Group, not a dataset"):
        compute_statistics([f"{tmp_path}/g.h5:/grp", f"{tmp_path}/g.h5:/Y"])


def test_dask_engine_without_dask_names_the_extra(tmp_path: Path, data: tuple[np.ndarray, np.ndarray],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    X, Y = data
    args, _ = write("npy_rows", tmp_path, X, Y)
    for name in ("dask", "dask.array", "dask.base", "distributed"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(InputError, match=r"pip install 'dlcert\[dask\]'") as exc:
        compute_statistics(args, engine="dask")
    assert "\n" not in str(exc.value)
