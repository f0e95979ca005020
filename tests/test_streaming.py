"""Streaming statistics: chunks sum to the whole, files sum to the union, stats files are faithful."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from constructions import construct, random_data

from dlcert import certify
from dlcert.datasets import load_statistics
from dlcert.errors import InputError
from dlcert.io import load_problem, save_statistics, save_weights
from dlcert.landscape import map_landscape
from dlcert.statistics import Statistics
from dlcert.streaming import stream_statistics


def assert_same(a: Statistics, b: Statistics, rtol: float = 1e-12) -> None:
    assert a.m == b.m
    assert a.Sxx.shape == b.Sxx.shape and a.Syx.shape == b.Syx.shape
    np.testing.assert_allclose(a.Sxx, b.Sxx, rtol=0, atol=rtol * np.abs(b.Sxx).max())
    np.testing.assert_allclose(a.Syx, b.Syx, rtol=0, atol=rtol * np.abs(b.Syx).max())
    assert a.syy == pytest.approx(b.syy, rel=rtol)


@pytest.fixture
def data(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return rng.standard_normal((6, 1001)), rng.standard_normal((3, 1001))  # (dx, m), (dy, m)


@pytest.mark.parametrize("layout", ["columns", "rows"])
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("chunk", [1, 7, 250, 1001, 5000, None])
def test_chunks_equal_whole(tmp_path: Path, data: tuple[np.ndarray, np.ndarray], layout: str,
                            order: str, chunk: int | None) -> None:
    X, Y = data
    Xs, Ys = (X, Y) if layout == "columns" else (X.T, Y.T)
    np.save(tmp_path / "x.npy", np.asarray(Xs, order=order))
    np.save(tmp_path / "y.npy", np.asarray(Ys, order=order))
    got = stream_statistics([tmp_path / "x.npy", tmp_path / "y.npy"], layout=layout, chunk_size=chunk)
    assert_same(got, Statistics.from_data(X, Y))


def test_layout_inferred_from_the_shared_sample_axis(tmp_path: Path,
                                                     data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    np.save(tmp_path / "x.npy", X.T)
    np.save(tmp_path / "y.npy", Y.T)
    got = stream_statistics([tmp_path / "x.npy", tmp_path / "y.npy"], chunk_size=100)
    assert (got.dx, got.dy) == (6, 3)
    assert_same(got, Statistics.from_data(X, Y))


def test_several_files_sum_to_the_union(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    np.save(tmp_path / "x1.npy", X[:, :400].T.astype(np.float32))
    np.save(tmp_path / "y1.npy", Y[:, :400].T)
    np.savez(tmp_path / "c2.npz", X=X[:, 400:700], Y=Y[:, 400:700])
    save_statistics(tmp_path / "s3.npz", Statistics.from_data(X[:, 700:], Y[:, 700:]))
    seen: list[tuple[int, int]] = []
    got = stream_statistics(
        [tmp_path / "x1.npy", tmp_path / "y1.npy", tmp_path / "c2.npz", tmp_path / "s3.npz"],
        chunk_size=64, progress=lambda d, t: seen.append((d, t)),
    )
    X32 = np.hstack([X[:, :400].astype(np.float32).astype(np.float64), X[:, 400:]])
    assert_same(got, Statistics.from_data(X32, Y))
    assert got.eps == pytest.approx(float(np.finfo(np.float32).eps))
    done = [d for d, _ in seen]
    assert done == sorted(done) and done[-1] == seen[-1][1] and seen[0][0] == 0
    assert len(seen) > 8  # per chunk, not per file


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p, X, Y: [np.save(p / "x.npy", X)] and [p / "x.npy"], "needs its .npy Y"),
        (lambda p, X, Y: [p / "x.txt"], "expected .npz"),
        (lambda p, X, Y: [p / "nope.npz"], "no such file"),
        (lambda p, X, Y: (np.save(p / "x.npy", X), np.save(p / "y.npy", Y[:, :10]))
         and [p / "x.npy", p / "y.npy"], "share no sample axis"),
        (lambda p, X, Y: (np.save(p / "x.npy", X[:, :6]), np.save(p / "y.npy", X[:, :6]))
         and [p / "x.npy", p / "y.npy"], "cannot tell the data layout"),
        (lambda p, X, Y: (np.save(p / "x.npy", X.astype(complex)), np.save(p / "y.npy", Y))
         and [p / "x.npy", p / "y.npy"], "expected real numbers"),
        (lambda p, X, Y: (np.save(p / "x.npy", np.array([object()] * 3), allow_pickle=True),
                          np.save(p / "y.npy", Y)) and [p / "x.npy", p / "y.npy"], "x.npy"),
        (lambda p, X, Y: (p.joinpath("x.npy").write_bytes(b"garbage"), np.save(p / "y.npy", Y))
         and [p / "x.npy", p / "y.npy"], "not a readable .npy"),
        (lambda p, X, Y: (np.save(p / "x.npy", X), np.save(p / "y.npy", Y),
                          np.savez(p / "c.npz", X=X[:4], Y=Y)) and
         [p / "x.npy", p / "y.npy", p / "c.npz"], "earlier data"),
    ],
)
def test_bad_sources(tmp_path: Path, data: tuple[np.ndarray, np.ndarray], make, match: str) -> None:  # type: ignore[no-untyped-def]
    X, Y = data
    paths = make(tmp_path, X, Y)
    with pytest.raises(InputError, match=match) as exc:
        stream_statistics(paths, chunk_size=100)
    assert "\n" not in str(exc.value)


def test_non_finite_value_is_located(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    X = X.copy()
    X[2, 777] = np.nan
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    with pytest.raises(InputError, match="feature 2, sample 777"):
        stream_statistics([tmp_path / "x.npy", tmp_path / "y.npy"], layout="columns", chunk_size=100)


def test_bad_chunk_size(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="chunk size"):
        stream_statistics([tmp_path / "a.npz"], chunk_size=0)


def test_stats_file_gives_the_same_verdicts_and_numbers_as_raw_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    widths = [4, 2, 3, 3]
    X, Y = random_data(rng, 4, 3, 60)
    np.save(tmp_path / "x.npy", X.T)
    np.save(tmp_path / "y.npy", Y.T)
    np.savez(tmp_path / "raw.npz", X=X, Y=Y)
    save_statistics(tmp_path / "stats.npz",
                    stream_statistics([tmp_path / "x.npy", tmp_path / "y.npy"], chunk_size=7))
    stats = Statistics.from_data(X, Y)
    for S in [(1, 2), (1,), (2, 3), ()]:
        c = construct(rng, stats, widths, S)
        assert c is not None
        save_weights(tmp_path / "w.npz", c.weights)
        a = certify(load_problem(tmp_path / "w.npz", tmp_path / "raw.npz").weights,
                    load_problem(tmp_path / "w.npz", tmp_path / "raw.npz").stats)
        p = load_problem(tmp_path / "w.npz", tmp_path / "stats.npz")
        b = certify(p.weights, p.stats)
        assert a.verdict is b.verdict
        assert b.loss == pytest.approx(a.loss, rel=1e-11)
        assert b.optimal_loss == pytest.approx(a.optimal_loss, rel=1e-11)
    la = map_landscape(load_statistics(tmp_path / "raw.npz", (4, 3)), widths)
    lb = map_landscape(load_statistics(tmp_path / "stats.npz", (4, 3)), widths)
    assert [r.index_set for r in la.critical_values] == [r.index_set for r in lb.critical_values]
    np.testing.assert_allclose([r.value for r in la.critical_values],
                               [r.value for r in lb.critical_values], rtol=1e-11)


def test_load_statistics_without_dims(tmp_path: Path, data: tuple[np.ndarray, np.ndarray]) -> None:
    X, Y = data
    np.savez(tmp_path / "rows.npz", X=X.T, Y=Y.T)
    assert_same(load_statistics(tmp_path / "rows.npz"), Statistics.from_data(X, Y))
    np.savez(tmp_path / "sq.npz", X=X[:3, :3], Y=Y[:, :3])
    with pytest.raises(InputError, match="--layout"):
        load_statistics(tmp_path / "sq.npz")
    assert load_statistics(tmp_path / "sq.npz", layout="rows").m == 3
    np.savez(tmp_path / "both.npz", X=X, Y=Y, Sxx=X @ X.T)
    with pytest.raises(InputError, match="both raw data"):
        load_statistics(tmp_path / "both.npz")
    np.savez(tmp_path / "odd.npz", X=X, Y=Y, Z=Y)
    with pytest.raises(InputError, match="unknown array"):
        load_statistics(tmp_path / "odd.npz")
