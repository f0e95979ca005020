"""The same data written in every format ``dlcert stats`` reads (tests of both engines).

``write(fmt, directory, X, Y)`` stores ``X (dx, m)``, ``Y (dy, m)`` as ``fmt`` and returns the
command-line inputs and the keyword options that read them back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Every input format (and shard layout) of dlcert.sources.
FORMATS = (
    "npy_rows", "npy_columns", "npz", "h5", "h5_members", "zarr", "zarr_members", "parquet",
    "npy_shards", "parquet_glob", "mixed_shards",
)


def h5(path: Path, **arrays: np.ndarray) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for name, a in arrays.items():
            f.create_dataset(name, data=a, chunks=True if a.ndim and a.size > 1 else None)


def zarr_store(path: Path, chunks: int = 64, **arrays: np.ndarray) -> None:
    import zarr

    g = zarr.open_group(str(path), mode="w")
    for name, a in arrays.items():
        cs = (a.shape[0], chunks) if a.ndim == 2 else (chunks,)
        g.create_array(name, data=a, chunks=cs)


def parquet(path: Path, X: np.ndarray, Y: np.ndarray, row_group_size: int = 97,
            x_dtype: Any = None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = {f"x{i}": X[i].astype(x_dtype or X.dtype) for i in range(X.shape[0])}
    cols.update({f"y{i}": Y[i] for i in range(Y.shape[0])})
    cols["id"] = np.arange(X.shape[1])  # a column that is neither X nor Y
    pq.write_table(pa.table(cols), path, row_group_size=row_group_size)


PARQUET_OPTIONS = {"x_columns": "x*", "y_columns": "y*"}


def write(fmt: str, d: Path, X: np.ndarray, Y: np.ndarray) -> tuple[list[str], dict[str, str]]:
    d.mkdir(parents=True, exist_ok=True)
    m = X.shape[1]
    cut = [0, m // 3, (2 * m) // 3, m]
    if fmt == "npy_rows":
        np.save(d / "X.npy", X.T)
        np.save(d / "Y.npy", Y.T)
        return [str(d / "X.npy"), str(d / "Y.npy")], {}
    if fmt == "npy_columns":
        np.save(d / "X.npy", np.asfortranarray(X))
        np.save(d / "Y.npy", Y)
        return [str(d / "X.npy"), str(d / "Y.npy")], {}
    if fmt == "npz":
        np.savez(d / "a.npz", X=X[:, : cut[1]], Y=Y[:, : cut[1]])
        np.savez(d / "b.npz", X=X[:, cut[1] :].T, Y=Y[:, cut[1] :].T)
        return [str(d / "a.npz"), str(d / "b.npz")], {}
    if fmt == "h5":
        h5(d / "data.h5", X=X.T, Y=Y.T)
        return [str(d / "data.h5")], {}
    if fmt == "h5_members":
        h5(d / "data.hdf5", **{"feat/in": X, "feat/out": Y})
        return [f"{d}/data.hdf5:/feat/in", f"{d}/data.hdf5:/feat/out"], {}
    if fmt == "zarr":
        zarr_store(d / "data.zarr", X=X, Y=Y)
        return [str(d / "data.zarr")], {}
    if fmt == "zarr_members":
        zarr_store(d / "data.zarr", chunks=50, inputs=X.T.copy(), targets=Y.T.copy())
        return [f"{d}/data.zarr:inputs", f"{d}/data.zarr:targets"], {}
    if fmt == "parquet":
        parquet(d / "t.parquet", X, Y)
        return [str(d / "t.parquet")], dict(PARQUET_OPTIONS)
    if fmt == "npy_shards":
        for i in range(3):
            np.save(d / f"x_{i:04d}.npy", X[:, cut[i] : cut[i + 1]].T)
            np.save(d / f"y_{i:04d}.npy", Y[:, cut[i] : cut[i + 1]].T)
        (d / "_SUCCESS").write_text("")
        return [str(d)], {}
    if fmt == "parquet_glob":
        for i in range(3):
            parquet(d / f"part-{i:05d}.parquet", X[:, cut[i] : cut[i + 1]], Y[:, cut[i] : cut[i + 1]])
        (d / ".part-00000.parquet.crc").write_text("")
        return [f"{d}/part-*.parquet"], dict(PARQUET_OPTIONS)
    if fmt == "mixed_shards":
        h5(d / "s0.h5", X=X[:, : cut[1]], Y=Y[:, : cut[1]])
        zarr_store(d / "s1.zarr", X=X[:, cut[1] : cut[2]].T.copy(), Y=Y[:, cut[1] : cut[2]].T.copy())
        np.savez(d / "s2.npz", X=X[:, cut[2] :], Y=Y[:, cut[2] :])
        return [str(d)], {}
    raise ValueError(fmt)
