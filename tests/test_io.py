"""Tests for dlcert.io: reading npz files, assembling a Problem, saving and reloading."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from dlcert.errors import InputError
from dlcert.io import (
    Layout,
    load_problem,
    read_metadata,
    read_npz,
    save_statistics,
    save_weights,
    weights_from_arrays,
)
from dlcert.statistics import Statistics

EPS64 = float(np.finfo(np.float64).eps)
EPS32 = float(np.finfo(np.float32).eps)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(7)


@pytest.fixture
def net(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A 4 -> 3 -> 2 network with 10 samples in the columns layout."""
    return {
        "W1": rng.standard_normal((3, 4)),
        "W2": rng.standard_normal((2, 3)),
        "X": rng.standard_normal((4, 10)),
        "Y": rng.standard_normal((2, 10)),
    }


def _save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def _one_line_error(excinfo: pytest.ExceptionInfo[InputError], path: Path) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    assert path.name in msg
    return msg


# ---------------------------------------------------------------- read_npz


def test_read_npz_returns_plain_dict(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    path = _save(tmp_path / "m.npz", **net)
    arrays = read_npz(path)
    assert type(arrays) is dict
    assert sorted(arrays) == ["W1", "W2", "X", "Y"]
    for key, value in net.items():
        np.testing.assert_array_equal(arrays[key], value)
    path.unlink()  # closed: nothing holds the file (and the arrays stay usable)
    assert arrays["W1"].shape == (3, 4)


def test_read_npz_compressed(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    path = tmp_path / "c.npz"
    np.savez_compressed(path, **net)
    np.testing.assert_array_equal(read_npz(path)["X"], net["X"])


def _text(tmp: Path) -> Path:
    path = tmp / "notes.npz"
    path.write_text("W1 = [[1, 2], [3, 4]]\n")
    return path


def _directory(tmp: Path) -> Path:
    path = tmp / "dir.npz"
    path.mkdir()
    return path


def _missing(tmp: Path) -> Path:
    return tmp / "missing.npz"


def _empty(tmp: Path) -> Path:
    path = tmp / "empty.npz"
    path.write_bytes(b"")
    return path


def _npy(tmp: Path) -> Path:
    path = tmp / "single.npz"
    with path.open("wb") as f:
        np.save(f, np.ones((2, 2)))
    return path


def _object(tmp: Path) -> Path:
    path = tmp / "pickled.npz"
    np.savez(path, W1=np.array([[1.0, None]], dtype=object))
    return path


def _zip_with_text_member(tmp: Path) -> Path:
    path = tmp / "zip.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W1.txt", "1 2 3")
    return path


def _bad_npy_member(tmp: Path) -> Path:
    path = tmp / "badmember.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W1.npy", b"\x93NUMPY\x01\x00garbage")
    return path


def _no_magic_member(tmp: Path) -> Path:
    path = tmp / "nomagic.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W1.npy", b"just bytes, not an array")
    return path


@pytest.mark.parametrize(
    ("make", "pattern"),
    [
        (_text, r"is not an \.npz archive \(an \.npz is a zip file"),
        (_directory, r"is a directory"),
        (_missing, r"no such file"),
        (_empty, r"is empty \(0 bytes\)"),
        (_npy, r"is a single \.npy array"),
        (_object, r"array W1 has dtype object .*needs pickle"),
        (_zip_with_text_member, r"member W1\.txt is not a \.npy array"),
        (_bad_npy_member, r"corrupt or truncated"),
        (_no_magic_member, r"corrupt or truncated|not a valid \.npy"),
    ],
)
def test_read_npz_rejects(make: object, pattern: str, tmp_path: Path) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    with pytest.raises(InputError, match=pattern) as info:
        read_npz(path)
    _one_line_error(info, path)


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.75, 0.9, 0.99])
@pytest.mark.parametrize("compressed", [False, True])
def test_read_npz_truncated(
    tmp_path: Path, net: dict[str, np.ndarray], fraction: float, compressed: bool
) -> None:
    full = tmp_path / "full.npz"
    (np.savez_compressed if compressed else np.savez)(full, **net)
    data = full.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError, match=r"^.*cut\.npz: corrupt or truncated \.npz archive") as i:
        read_npz(cut)
    _one_line_error(i, cut)


def test_read_npz_corrupt_payload_fails_crc(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    path = _save(tmp_path / "flip.npz", **net)
    data = bytearray(path.read_bytes())
    offset = data.index(b"\x93NUMPY") + 200  # inside W1's float payload (header is 128 bytes)
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"corrupt or truncated .*CRC"):
        read_npz(path)


def test_read_npz_rejects_duplicate_members(tmp_path: Path) -> None:
    path = tmp_path / "dup.npz"
    buf = tmp_path / "w.npy"
    np.save(buf, np.ones((2, 2)))
    with (
        pytest.warns(UserWarning, match="Duplicate name"),
        zipfile.ZipFile(path, "w") as zf,
    ):
        zf.write(buf, "W1.npy")
        zf.write(buf, "W1.npy")
    with pytest.raises(InputError, match=r"more than one member named W1\.npy"):
        read_npz(path)


def test_read_npz_rejects_header_larger_than_member(tmp_path: Path) -> None:
    import io as _io

    buf = _io.BytesIO()
    np.lib.format.write_array(buf, np.ones((2, 2)))
    raw = buf.getvalue().replace(b"(2, 2)", b"(9, 9)")
    path = tmp_path / "lies.npz"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("W1.npy", raw)
    with pytest.raises(InputError, match=r"W1 declares shape \(9, 9\) .*648 bytes.* 32 bytes"):
        read_npz(path)


# ---------------------------------------------------------------- weights_from_arrays


def test_weights_ignore_data_and_meta(net: dict[str, np.ndarray]) -> None:
    arrays = {**net, "Sxx": np.eye(4), "meta_note": np.array("x"), "meta_lr": np.array(0.1)}
    ws = weights_from_arrays(arrays, "m.npz")
    assert [w.shape for w in ws] == [(3, 4), (2, 3)]


def test_weights_accept_zero_padded_names() -> None:
    ws = weights_from_arrays({"W01": np.ones((2, 3)), "W02": np.ones((1, 2))}, "m.npz")
    assert [w.shape for w in ws] == [(2, 3), (1, 2)]


@pytest.mark.parametrize(
    ("keys", "pattern"),
    [
        (["W1", "W3"], r"W2 is missing \(1 of W1\.\.W3 missing; found W1, W3\)"),
        (["W2", "W3"], r"W1 is missing"),
        (["W1", "W2", "W5"], r"W3 is missing \(2 of W1\.\.W5 missing"),
        (["W1", "W01"], r"arrays W1 and W01 both name layer 1"),
        (["W1", "W2", "W002"], r"arrays W2 and W002 both name layer 2"),
        (["W0", "W1"], r"array W0: layer indices start at 1"),
        (["w1"], r"unknown array\(s\) 'w1'; allowed: W1\.\.WN, X, Y, Sxx, Syx, syy, m, meta_\*"),
        (["W1", "bias1"], r"unknown array\(s\) 'bias1'"),
        (["W1", "x"], r"unknown array\(s\) 'x'"),
        (["W1", "W1b"], r"unknown array\(s\) 'W1b'"),
        (["W\u0661"], r"unknown array"),  # an Arabic-Indic digit is not a layer index
        (["X", "Y"], r"no weights; expected arrays W1\.\.WN"),
        ([], r"no weights"),
    ],
)
def test_weights_key_errors(keys: list[str], pattern: str) -> None:
    arrays = {k: np.ones((2, 2)) for k in keys}
    with pytest.raises(InputError, match=r"^m\.npz: " + pattern):
        weights_from_arrays(arrays, "m.npz")


def test_weights_chain_is_validated() -> None:
    arrays = {"W1": np.ones((5, 2)), "W2": np.ones((4, 3))}
    with pytest.raises(InputError, match=r"^m\.npz: W2 has 3 columns but W1 has 5 rows"):
        weights_from_arrays(arrays, "m.npz")


# ---------------------------------------------------------------- load_problem


def test_load_problem_from_one_file(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    path = _save(tmp_path / "m.npz", **net)
    p = load_problem(path)
    assert p.eps == EPS64 and p.stats.eps == EPS64
    assert p.weights_source == p.data_source == str(path)
    expected = Statistics.from_data(net["X"], net["Y"])
    np.testing.assert_array_equal(p.stats.Sxx, expected.Sxx)
    np.testing.assert_array_equal(p.stats.Syx, expected.Syx)
    assert p.stats.syy == expected.syy and p.stats.m == 10


def test_both_layouts_give_identical_stats(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    cols = _save(tmp_path / "cols.npz", **net)
    rows = _save(tmp_path / "rows.npz", W1=net["W1"], W2=net["W2"], X=net["X"].T, Y=net["Y"].T)
    a, b = load_problem(cols), load_problem(rows)
    c = load_problem(rows, layout=Layout.ROWS)
    for p in (b, c):
        np.testing.assert_array_equal(p.stats.Sxx, a.stats.Sxx)
        np.testing.assert_array_equal(p.stats.Syx, a.stats.Syx)
        assert p.stats.syy == a.stats.syy and p.stats.m == a.stats.m


def test_ambiguous_square_data_needs_layout(tmp_path: Path, rng: np.random.Generator) -> None:
    W = rng.standard_normal((3, 3))
    X, Y = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    path = _save(tmp_path / "sq.npz", W1=W, X=X, Y=Y)
    with pytest.raises(InputError, match=r"sq\.npz: cannot tell the data layout.*--layout") as i:
        load_problem(path)
    _one_line_error(i, path)
    cols = load_problem(path, layout=Layout.COLUMNS)
    rows = load_problem(path, layout=Layout.ROWS)
    np.testing.assert_allclose(cols.stats.Sxx, X @ X.T, rtol=1e-14)
    np.testing.assert_allclose(rows.stats.Sxx, X.T @ X, rtol=1e-14)


@pytest.mark.parametrize("where", ["W1", "W2", "X", "Y"])
def test_float32_weights_and_float32_data_are_told_apart(
    tmp_path: Path, net: dict[str, np.ndarray], where: str
) -> None:
    arrays = dict(net)
    arrays[where] = arrays[where].astype(np.float32)
    p = load_problem(_save(tmp_path / "f32.npz", **arrays))
    in_weights = where.startswith("W")
    assert p.weights_eps == (EPS32 if in_weights else EPS64)
    assert p.stats.eps == (EPS64 if in_weights else EPS32)
    assert p.eps == EPS32  # the coarser of the two
    assert all(w.dtype == np.float64 for w in p.weights)


def test_integer_data_counts_as_float64(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    p = load_problem(
        _save(
            tmp_path / "int.npz",
            W1=net["W1"],
            W2=net["W2"],
            X=np.arange(40).reshape(4, 10),
            Y=np.ones((2, 10), dtype=np.int8),
        )
    )
    assert p.eps == EPS64


def test_float16_data_gives_float16_eps(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    p = load_problem(_save(tmp_path / "h.npz", **{**net, "X": net["X"].astype(np.float16)}))
    assert p.eps == float(np.finfo(np.float16).eps)


def test_separate_data_file_wins(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    model = _save(tmp_path / "m.npz", **net)
    data = _save(tmp_path / "d.npz", X=2 * net["X"], Y=net["Y"])
    p = load_problem(model, data)
    assert p.data_source == str(data)
    np.testing.assert_allclose(p.stats.Sxx, 4 * net["X"] @ net["X"].T, rtol=1e-14)


def test_stats_file_round_trip(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    model = _save(tmp_path / "m.npz", W1=net["W1"], W2=net["W2"])
    data = _save(tmp_path / "d.npz", X=net["X"], Y=net["Y"])
    raw = load_problem(model, data)
    stats_path = tmp_path / "stats.npz"
    save_statistics(stats_path, raw.stats)
    again = load_problem(model, stats_path)
    # identical to rounding: symmetrisation is the only arithmetic on the way back
    np.testing.assert_allclose(
        again.stats.Sxx, raw.stats.Sxx, rtol=0, atol=2 * EPS64 * float(np.abs(raw.stats.Sxx).max())
    )
    np.testing.assert_array_equal(again.stats.Syx, raw.stats.Syx)
    assert again.stats.syy == raw.stats.syy and again.stats.m == raw.stats.m
    assert again.eps == raw.eps


def test_stats_file_precision_follows_stored_dtypes(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    """meta_eps records the data's precision but may only tighten what the stored dtypes imply
    (a file's claim never makes a gate more lenient): float64 statistics are judged as float64,
    and float32 weights still bring float32's tolerance."""
    model = _save(tmp_path / "m.npz", W1=net["W1"], W2=net["W2"])
    data = _save(tmp_path / "d.npz", X=net["X"].astype(np.float32), Y=net["Y"])
    raw = load_problem(model, data)
    assert raw.eps == EPS32
    save_statistics(tmp_path / "s.npz", raw.stats)
    assert float(np.load(tmp_path / "s.npz")["meta_eps"]) == EPS32
    again = load_problem(model, tmp_path / "s.npz")
    assert again.eps == EPS64 and again.stats.eps == EPS64
    model32 = _save(tmp_path / "m32.npz", W1=net["W1"].astype(np.float32), W2=net["W2"])
    assert load_problem(model32, tmp_path / "s.npz").eps == EPS32


@pytest.mark.parametrize("claim", [0.99, 1e-3, 1.2e-7])
def test_meta_eps_never_loosens(tmp_path: Path, net: dict[str, np.ndarray], claim: float) -> None:
    X, Y = net["X"], net["Y"]
    model = _save(tmp_path / "m.npz", W1=net["W1"], W2=net["W2"])
    stats = {"Sxx": X @ X.T, "Syx": Y @ X.T, "syy": np.array(float(np.sum(Y * Y))), "m": np.array(10)}
    path = _save(tmp_path / "d.npz", **stats, meta_eps=np.array(claim))
    assert load_problem(model, path).eps == EPS64
    low = {k: v.astype(np.float32) if k != "m" else v for k, v in stats.items()}
    path32 = _save(tmp_path / "d32.npz", **low, meta_eps=np.array(1e-12))
    assert load_problem(model, path32).eps == 1e-12  # a claim may tighten


def test_stats_in_weights_file(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    X, Y = net["X"], net["Y"]
    path = _save(
        tmp_path / "m.npz",
        W1=net["W1"],
        W2=net["W2"],
        Sxx=X @ X.T,
        Syx=Y @ X.T,
        syy=np.array(float(np.sum(Y * Y))),
        m=np.array(10),
    )
    p = load_problem(path)
    assert p.stats.m == 10 and p.stats.Sxx.shape == (4, 4)


@pytest.mark.parametrize(
    ("extra", "pattern"),
    [
        ({}, r"m\.npz: no data: found none of X, Y or Sxx, Syx, syy, m; pass --data"),
        ({"X": "X"}, r"has X but no Y; expected both X and Y"),
        ({"Y": "Y"}, r"has Y but no X"),
        ({"X": "X", "Y": "Y", "m": "m"}, r"holds both raw data \(X, Y\) and statistics \(m\)"),
        ({"Sxx": "Sxx", "Syx": "Syx"}, r"statistics file is missing syy, m"),
        ({"X": "X", "Y": "Y", "labels": "Y"}, r"unknown array\(s\) 'labels'"),
    ],
)
def test_load_problem_data_kind_errors(
    tmp_path: Path, net: dict[str, np.ndarray], extra: dict[str, str], pattern: str
) -> None:
    X, Y = net["X"], net["Y"]
    pool = {"X": X, "Y": Y, "Sxx": X @ X.T, "Syx": Y @ X.T, "m": np.array(10)}
    path = _save(
        tmp_path / "m.npz", W1=net["W1"], W2=net["W2"], **{k: pool[v] for k, v in extra.items()}
    )
    with pytest.raises(InputError, match=pattern) as info:
        load_problem(path)
    _one_line_error(info, path)


def test_data_file_without_data_names_data_file(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    model = _save(tmp_path / "m.npz", **net)
    data = _save(tmp_path / "d.npz", meta_note=np.array("nothing"))
    with pytest.raises(InputError, match=r"d\.npz: no data: .*expected X, Y or Sxx"):
        load_problem(model, data)


@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        ({"Sxx": np.eye(3)}, r"Sxx has shape \(3, 3\) but W1 takes dx = 4"),
        ({"Syx": np.ones((3, 4))}, r"Syx has shape \(3, 4\) .*expected \(2, 4\)"),
        ({"X": np.ones((5, 10))}, r"X has shape \(5, 10\) but W1 takes dx = 4"),
        ({"Y": np.ones((3, 10))}, r"Y has shape \(3, 10\) but the last layer gives dy = 2"),
        ({"meta_eps": np.array(-1.0)}, r"meta_eps has shape \(\), dtype float64; expected a 0-d float"),
    ],
)
def test_data_dims_checked_against_weights(
    tmp_path: Path, net: dict[str, np.ndarray], data: dict[str, np.ndarray], pattern: str
) -> None:
    X, Y = net["X"], net["Y"]
    model = _save(tmp_path / "m.npz", W1=net["W1"], W2=net["W2"])
    if "X" in data or "Y" in data:
        base = {"X": X, "Y": Y}
    else:
        base = {"Sxx": X @ X.T, "Syx": Y @ X.T, "syy": np.array(np.sum(Y * Y)), "m": np.array(10)}
    path = _save(tmp_path / "d.npz", **{**base, **data})
    with pytest.raises(InputError, match=r"d\.npz: .*" + pattern):
        load_problem(model, path)


def test_load_problem_weight_errors_name_weights_file(tmp_path: Path) -> None:
    path = _save(
        tmp_path / "bad.npz",
        W1=np.ones((3, 2)),
        W3=np.ones((1, 3)),
        X=np.ones((2, 5)),
        Y=np.ones((1, 5)),
    )
    with pytest.raises(InputError, match=r"bad\.npz: W2 is missing"):
        load_problem(path)


# ---------------------------------------------------------------- saving


def test_save_weights_metadata_round_trip(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    path = tmp_path / "model"  # no suffix: written exactly here, nothing appended
    meta = {"lr": 0.01, "steps": 1000, "note": "trained on ünïcode", "converged": False}
    save_weights(path, [net["W1"].astype(np.float32), net["W2"]], meta)
    assert path.exists() and not (tmp_path / "model.npz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp file left
    with np.load(path, allow_pickle=False) as npz:  # loads without pickle
        assert npz["meta_note"].dtype.kind == "U"
    arrays = read_npz(path)
    back = read_metadata(arrays)
    assert back == meta
    assert all(type(back[k]) is type(v) for k, v in meta.items())
    ws = weights_from_arrays(arrays, str(path))
    np.testing.assert_array_equal(ws[1], net["W2"])
    assert arrays["W1"].dtype == np.float32  # saved in its own dtype


def test_saved_weights_load_as_problem(tmp_path: Path, net: dict[str, np.ndarray]) -> None:
    path = tmp_path / "w.npz"
    save_weights(path, [net["W1"], net["W2"]], {"seed": 3})
    data = _save(tmp_path / "d.npz", X=net["X"], Y=net["Y"])
    p = load_problem(path, data)
    np.testing.assert_array_equal(p.weights[0], net["W1"])


@pytest.mark.parametrize(
    ("meta", "pattern"),
    [
        ({"bad key": 1}, r"metadata key 'bad key' is not an identifier"),
        ({"arr": [1, 2]}, r"metadata arr is a list; expected float, int, str or bool"),
        ({"none": None}, r"metadata none is a NoneType"),
    ],
)
def test_save_weights_rejects_bad_metadata(
    tmp_path: Path, meta: dict[str, object], pattern: str
) -> None:
    with pytest.raises(InputError, match=pattern):
        save_weights(tmp_path / "w.npz", [np.ones((2, 2))], meta)  # type: ignore[arg-type]


def test_save_weights_validates_chain(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"W2 has 3 columns but W1 has 2 rows"):
        save_weights(tmp_path / "w.npz", [np.ones((2, 2)), np.ones((1, 3))])
    assert not (tmp_path / "w.npz").exists()


def test_read_metadata_rejects_non_scalar() -> None:
    with pytest.raises(InputError, match=r"metadata meta_v has shape \(2,\)"):
        read_metadata({"meta_v": np.ones(2)})
