"""YAML manifests (SPEC §6.1): every way to name weights and data, and every way to get it wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from constructions import random_data

from dlcert.errors import InputError
from dlcert.io import Layout, load_problem, save_statistics, save_weights
from dlcert.manifest import (
    MAX_BYTES,
    load_check_input,
    load_landscape_input,
    manifest_problem,
    parse_widths,
    read_manifest,
)
from dlcert.statistics import Statistics


@pytest.fixture
def files(tmp_path: Path) -> Path:
    """model.npz (4 -> 3 -> 2), train.npz (rows layout), stats.npz, W1.npy, W2.npy in sub/."""
    rng = np.random.default_rng(0)
    X, Y = random_data(rng, 4, 2, 25)
    W = [rng.standard_normal((3, 4)), rng.standard_normal((2, 3))]
    sub = tmp_path / "sub"
    sub.mkdir()
    save_weights(sub / "model.npz", W)
    np.savez(sub / "train.npz", X=X.T, Y=Y.T)
    save_statistics(sub / "stats.npz", Statistics.from_data(X, Y))
    np.save(sub / "W1.npy", W[0])
    np.save(sub / "W2.npy", W[1])
    return sub


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_weights_and_data_relative_to_the_manifest(files: Path, monkeypatch: pytest.MonkeyPatch,
                                                   tmp_path: Path) -> None:
    mf = write(files / "m.yaml", "weights: model.npz\ndata: train.npz\nlayout: rows\n"
                                 "tolerances: {gtol: 1.0e-6, ftol: 1.0e-9}\n")
    monkeypatch.chdir(tmp_path)  # relative paths resolve against the manifest, not the cwd
    problem, gtol, ftol = load_check_input(Path("sub/m.yaml"), None, None, None, None)
    direct = load_problem(files / "model.npz", files / "train.npz", Layout.ROWS)
    assert (gtol, ftol) == (1e-6, 1e-9)
    for a, b in zip(problem.weights, direct.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(problem.stats.Sxx, direct.stats.Sxx)
    # command-line options win over the manifest
    _, gtol, ftol = load_check_input(mf, None, None, 1e-3, None)
    assert (gtol, ftol) == (1e-3, 1e-9)


def test_npz_path_passes_through(files: Path) -> None:
    problem, gtol, ftol = load_check_input(files / "model.npz", files / "stats.npz", None, 0.5, None)
    assert (gtol, ftol) == (0.5, None)
    assert problem.stats.m == 25


@pytest.mark.parametrize(
    "layers",
    ["[W1.npy, W2.npy]", "[W1.npy, [[1, 2, 3], [4, 5, 6.5]]]"],
)
def test_layers_from_npy_and_inline(files: Path, layers: str) -> None:
    mf = write(files / "m.yml", f"layers: {layers}\nstats: stats.npz\n")
    problem = manifest_problem(read_manifest(mf))
    np.testing.assert_array_equal(problem.weights[0], np.load(files / "W1.npy"))
    assert problem.weights[1].shape == (2, 3)
    assert problem.stats.m == 25
    assert problem.weights_source == str(mf)


def test_landscape_input(files: Path) -> None:
    mf = write(files / "l.yaml", "data: train.npz\nlayout: rows\nwidths: [4, 2, 2]\n"
                                 "tolerances: {ftol: 1.0e-8}\n")
    inp = load_landscape_input(mf, None, None)
    assert inp.widths == (4, 2, 2) and inp.ftol == 1e-8 and inp.gtol is None
    assert inp.stats.m == 25
    assert load_landscape_input(mf, (4, 1, 2), None).widths == (4, 1, 2)  # option wins
    with pytest.raises(InputError, match="no widths"):
        load_landscape_input(files / "stats.npz", None, None)
    assert load_landscape_input(files / "stats.npz", (4, 3, 2), None).stats.m == 25


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("weights: model.npz\nmodel: x\n", r"unknown key\(s\) 'model'; allowed keys: weights, layers"),
        ("- weights\n- data\n", "must be a mapping"),
        ("just a string\n", "must be a mapping"),
        ("", "must be a mapping"),
        ("weights: [model.npz\n", "not valid YAML"),
        ("a: &x [1]\nb: *x\n", "aliases"),
        ("weights: 3\n", "weights must be a file path"),
        ("weights: model.npz\nlayers: [W1.npy]\n", "either weights or layers"),
        ("data: train.npz\nstats: stats.npz\n", "either data or stats"),
        ("layout: sideways\n", "layout must be columns or rows"),
        ("tolerances: 1e-6\n", "tolerances must be a mapping"),
        ("tolerances: {gtol: fast}\n", r"tolerances.gtol must be a number in \(0, 1\)"),
        ("tolerances: {gtol: 2.0}\n", r"tolerances.gtol must be a number in \(0, 1\)"),
        ("tolerances: {gtol: true}\n", r"tolerances.gtol"),
        ("tolerances: {xtol: 1.0e-3}\n", "unknown key.*in tolerances"),
        ("widths: [4, true, 2]\n", "widths must be a list"),
        ("widths: [4]\n", "widths must be a list"),
        ("widths: 4,x\n", "not a comma-separated"),
        ("layers: []\n", "layers must be a non-empty list"),
        ("layers: [[[1, 2], [3]]]\n", "row 2 has 1 entries"),
        ("layers: [[[1, yes]]]\n", r"layers\[1\] \(W1\)\[1\]\[2\] is True"),
        ("1: model.npz\n", "is not a string"),
        ("weights: model.npz\n" + "x: " + "[" * 40 + "]" * 40 + "\n", "nesting deeper"),
    ],
)
def test_manifest_errors_are_one_line_naming_the_file(files: Path, text: str, match: str) -> None:
    mf = write(files / "bad.yaml", text)
    with pytest.raises(InputError, match=match) as exc:
        read_manifest(mf)
    msg = str(exc.value)
    assert "\n" not in msg and "bad.yaml" in msg


def test_alias_bomb_is_rejected_before_expansion(files: Path) -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    mf = write(files / "bomb.yaml", "\n".join(lines) + "\n")
    with pytest.raises(InputError, match="aliases"):
        read_manifest(mf)


def test_oversized_manifest(files: Path) -> None:
    mf = write(files / "big.yaml", "weights: model.npz\n#" + "x" * MAX_BYTES + "\n")
    with pytest.raises(InputError, match="limit"):
        read_manifest(mf)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("weights: missing.npz\ndata: train.npz\n", "missing.npz: no such file"),
        ("layers: [nope.npy]\nstats: stats.npz\n", r"layers\[1\]: .*nope.npy: no such file"),
        ("layers: [W2.npy, W1.npy]\nstats: stats.npz\n", "W2 has 4 columns but W1 has 2 rows"),
        ("layers: [W1.npy, W2.npy]\n", "no data"),
        ("data: train.npz\n", "no weights"),
        ("layers: [model.npz]\nstats: stats.npz\n", "is an .npz archive"),
    ],
)
def test_manifest_content_errors(files: Path, text: str, match: str) -> None:
    mf = write(files / "c.yaml", text)
    with pytest.raises(InputError, match=match) as exc:
        manifest_problem(read_manifest(mf))
    assert "\n" not in str(exc.value)


def test_landscape_uses_a_check_manifest(files: Path) -> None:
    """One manifest serves check and landscape: its data, and its weights' widths."""
    mf = write(files / "w.yaml", "weights: model.npz\ndata: train.npz\nlayout: rows\n")
    inp = load_landscape_input(mf, None, None)
    direct = load_problem(files / "model.npz", files / "train.npz", Layout.ROWS)
    assert inp.widths == (4, 3, 2) and inp.weights is not None
    np.testing.assert_array_equal(inp.stats.Sxx, direct.stats.Sxx)
    for a, b in zip(inp.weights, direct.weights, strict=True):
        np.testing.assert_array_equal(a, b)
    same = write(files / "w2.yaml", "weights: model.npz\ndata: train.npz\nlayout: rows\nwidths: [4, 3, 2]\n")
    assert load_landscape_input(same, None, None).widths == (4, 3, 2)
    assert load_landscape_input(same, (4, 3, 2), None).widths == (4, 3, 2)


@pytest.mark.parametrize("command", ["check", "landscape"])
def test_widths_that_contradict_the_weights_are_refused(files: Path, command: str) -> None:
    mf = write(files / "w.yaml", "weights: model.npz\ndata: train.npz\nlayout: rows\nwidths: [4, 2]\n")
    with pytest.raises(InputError) as exc:
        if command == "check":
            load_check_input(mf, None, None, None, None)
        else:
            load_landscape_input(mf, None, None)
    assert str(exc.value) == (f"{mf}: widths: [4, 2] but the weights have widths [4, 3, 2]; "
                              "fix widths or remove it")


def test_widths_option_that_contradicts_the_weights_is_refused(files: Path) -> None:
    mf = write(files / "w.yaml", "weights: model.npz\ndata: train.npz\nlayout: rows\n")
    with pytest.raises(InputError, match=r"--widths 4,5,2 but the weights of .*w.yaml have widths 4,3,2"):
        load_landscape_input(mf, (4, 5, 2), None)


@pytest.mark.parametrize(
    ("written", "value"),
    [("1e-3", 1e-3), ("1.0e-6", 1e-6), ("'2.5e-4'", 2.5e-4), ("0.5", 0.5), ("1E-7", 1e-7)],
)
def test_tolerances_as_a_person_writes_them(files: Path, written: str, value: float) -> None:
    mf = write(files / "t.yaml", f"weights: model.npz\ndata: train.npz\nlayout: rows\n"
                                 f"tolerances: {{gtol: {written}, ftol: {written}}}\n")
    m = read_manifest(mf)
    assert m.gtol == value and m.ftol == value


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("fast", "tolerances.gtol must be a number in (0, 1), got the string 'fast', which is not a number"),
        ("1e-3x",
         "tolerances.gtol must be a number in (0, 1), got the string '1e-3x', which is not a number"),
        ("2e0", "tolerances.gtol must be a number in (0, 1), got '2e0'"),
        ("nan", "tolerances.gtol must be a number in (0, 1), got 'nan'"),
        (".nan", "tolerances.gtol must be a number in (0, 1), got nan"),
        ("'-1e-3'", "tolerances.gtol must be a number in (0, 1), got '-1e-3'"),
        ("true", "tolerances.gtol must be a number in (0, 1), got True (bool)"),
        ("[1]", "tolerances.gtol must be a number in (0, 1), got [1] (list)"),
    ],
)
def test_tolerances_refused_with_an_exact_message(files: Path, written: str, message: str) -> None:
    mf = write(files / "t.yaml", f"weights: model.npz\ntolerances: {{gtol: {written}}}\n")
    with pytest.raises(InputError) as exc:
        read_manifest(mf)
    assert str(exc.value) == f"{mf}: {message}"


@pytest.mark.parametrize(("text", "ok"), [("4,3,2", (4, 3, 2)), (" 4, 3 ", (4, 3)), ("4", None),
                                          ("4,0,2", None), ("a,b", None), ("", None)])
def test_parse_widths(text: str, ok: tuple[int, ...] | None) -> None:
    if ok is None:
        with pytest.raises(InputError, match="--widths"):
            parse_widths(text)
    else:
        assert parse_widths(text) == ok
