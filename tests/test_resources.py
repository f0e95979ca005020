"""The resource guard: too-large problems are refused with one line and exit 2, before the work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dlcert.batch import CheckOptions, Requirement, run_batch, specs_for
from dlcert.certificate import ExitCode
from dlcert.cli import app
from dlcert.errors import InputError, ResourceError
from dlcert.hessian import DENSE_LIMIT
from dlcert.resources import (
    ENV_LIMIT,
    available_memory,
    certify_estimate,
    guard_certify,
    guard_files,
    load_estimate,
    parse_size,
)


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.mark.parametrize(
    ("text", "value"),
    [("1024", 1024), ("1K", 1024), ("1.5k", 1536), ("64M", 64 * 2**20), ("2G", 2 * 2**30),
     ("1T", 2**40), ("3MiB", 3 * 2**20), (" 10 MB ", 10 * 2**20)],
)
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


@pytest.mark.parametrize("text", ["", "lots", "-5M", "1P", "1e9"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(InputError, match=ENV_LIMIT):
        parse_size(text)


def test_available_memory_override_and_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LIMIT, "5M")
    assert available_memory() == (5 * 2**20, ENV_LIMIT)
    monkeypatch.delenv(ENV_LIMIT)
    limit, source = available_memory()
    assert limit is None or limit > 0
    assert source


def test_certify_estimate_grows_and_switches_to_iterative() -> None:
    small = certify_estimate([4, 3, 2], dense_limit=DENSE_LIMIT)
    big = certify_estimate([300, 300, 300], dense_limit=DENSE_LIMIT)
    assert 0 < small.bytes < big.bytes
    assert "dense Hessian" in small.dominant
    assert "Lanczos" in big.dominant
    # dense Hessian of P parameters: at least P^2 doubles
    p = 40 * 40 * 2
    dense = certify_estimate([40, 40, 40], dense_limit=10**6)
    assert dense.bytes >= 8 * p * p
    # width-squared products dominate a wide, shallow-parameter chain's SVD stage
    wide = certify_estimate([2000, 1, 2000], dense_limit=DENSE_LIMIT)
    assert wide.bytes >= 8 * 2000 * 2000


def test_guard_certify_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LIMIT, "1M")
    with pytest.raises(ResourceError) as info:
        guard_certify([500, 500, 500], "model.npz", dense_limit=DENSE_LIMIT)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("model.npz: certification would need about ")
    assert "1.0 MiB is available (DLCERT_MEMORY_LIMIT)" in msg
    monkeypatch.setenv(ENV_LIMIT, "100G")
    guard_certify([500, 500, 500], "model.npz", dense_limit=DENSE_LIMIT)


def _bomb(path: Path, n: int) -> Path:
    """A small compressed .npz whose X declares n * 4 float64 zeros."""
    rng = np.random.default_rng(0)
    np.savez_compressed(path, W1=rng.standard_normal((2, 4)), W2=rng.standard_normal((3, 2)),
                        X=np.zeros((4, n)), Y=np.zeros((3, n)))
    return path


def test_compressed_bomb_refused_from_headers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = _bomb(tmp_path / "bomb.npz", 250_000)
    assert p.stat().st_size < 100_000
    est = load_estimate([p])
    assert est.bytes >= 2 * 8 * 7 * 250_000  # stored + float64 copy of X and Y
    assert "bomb.npz:X" in est.dominant
    monkeypatch.setenv(ENV_LIMIT, "4M")
    with pytest.raises(ResourceError, match=r"bomb\.npz: loading would need about"):
        guard_files([p])


def test_guard_files_ignores_what_the_loader_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_LIMIT, "1")
    (tmp_path / "junk.npz").write_bytes(b"PK\x03\x04garbage")
    guard_files([tmp_path / "junk.npz", tmp_path / "missing.npz", None])


def test_cli_refuses_with_one_line(runner: CliRunner, samples_dir: Path, tmp_path: Path) -> None:
    bomb = _bomb(tmp_path / "bomb.npz", 250_000)
    result = runner.invoke(app, ["check", str(bomb)], env={ENV_LIMIT: "4M"})
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"dlcert: error: {bomb}: loading would need about ")
    assert "Traceback" not in result.stderr


def test_certification_stage_refused(runner: CliRunner, tmp_path: Path) -> None:
    """Files that load within the limit but whose certification would not fit."""
    rng = np.random.default_rng(1)
    d = 120
    path = tmp_path / "wide.npz"
    np.savez(path, W1=rng.standard_normal((d, d)), W2=rng.standard_normal((d, d)),
             X=rng.standard_normal((d, 2 * d)), Y=rng.standard_normal((d, 2 * d)))
    load = load_estimate([path]).bytes
    cert = certify_estimate([d, d, d], dense_limit=DENSE_LIMIT).bytes
    assert load < cert
    limit = (load + cert) // 2
    result = runner.invoke(app, ["check", str(path)], env={ENV_LIMIT: str(limit)})
    assert result.exit_code == 2, result.stdout
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert "certification would need about" in result.stderr and "Lanczos/LOBPCG" in result.stderr
    # with room to spare the same file is certified (a verdict, not an error)
    ok = runner.invoke(app, ["check", str(path), "-f", "json", "--time-budget", "1"],
                       env={ENV_LIMIT: str(4 * cert)})
    assert ok.exit_code in (3, 4, 5, 0), ok.stderr


def test_resource_error_in_batch_is_one_row(samples_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = _bomb(tmp_path / "bomb.npz", 250_000)
    monkeypatch.setenv(ENV_LIMIT, "4M")
    batch = run_batch(specs_for([samples_dir / "global_full_rank.npz", bomb], None, CheckOptions()),
                      Requirement.GLOBAL)
    ok, refused = batch.checks
    assert ok.exit_code == ExitCode.OK
    assert refused.error is not None and refused.error.kind == "resource_error"
    assert refused.exit_code == ExitCode.INPUT_ERROR == batch.exit_code


def test_npy_header_versions_all_read(tmp_path: Path) -> None:
    """Header 3.0 (utf-8 field names) is read like 1.0 and 2.0: the guard cannot be skipped."""
    from dlcert.resources import read_npy_header

    a = np.zeros((3, 4), dtype=np.float32)
    for version in ((1, 0), (2, 0), (3, 0)):
        path = tmp_path / f"v{version[0]}.npy"
        with path.open("wb") as f:
            np.lib.format.write_array(f, a, version=version)
        with path.open("rb") as f:
            shape, dtype, fortran, _ = read_npy_header(f)
        assert (shape, dtype, fortran) == ((3, 4), np.dtype(np.float32), False)
    bad = tmp_path / "v9.npy"
    bad.write_bytes(b"\x93NUMPY\x09\x00" + bytes(64))
    with bad.open("rb") as f, pytest.raises(ValueError, match=r"version 9\.0"):
        read_npy_header(f)


def test_npy_file_header_refuses_declared_size_beyond_file(tmp_path: Path) -> None:
    from dlcert.resources import npy_file_header

    np.save(tmp_path / "a.npy", np.ones((4, 4)))
    raw = (tmp_path / "a.npy").read_bytes()
    (tmp_path / "a.npy").write_bytes(raw.replace(b"(4, 4)", b"(9999, 99999)", 1))
    with pytest.raises(InputError, match=r"a\.npy: declares shape \(9999, 99999\)"):
        npy_file_header(tmp_path / "a.npy")


@pytest.mark.parametrize(
    ("widths", "trials", "save", "refused"),
    [
        ((4, 3, 2), 5, True, False),
        ((4, 20_000_000, 3), 0, True, True),
        ((4, 20_000_000, 3), 0, False, False),  # the ladder needs only the data's sizes
        ((4, 10_000_000, 3), 1, False, True),
    ],
)
def test_guard_landscape(monkeypatch: pytest.MonkeyPatch, widths: tuple[int, ...], trials: int,
                         save: bool, refused: bool) -> None:
    from dlcert.resources import guard_landscape

    monkeypatch.setenv(ENV_LIMIT, "64M")
    if refused:
        with pytest.raises(ResourceError, match=r"d\.npz: the landscape would need about"):
            guard_landscape(widths, "d.npz", trials=trials, save_optimum=save, dense_limit=DENSE_LIMIT)
    else:
        guard_landscape(widths, "d.npz", trials=trials, save_optimum=save, dense_limit=DENSE_LIMIT)


def test_guard_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    from dlcert.resources import guard_statistics

    monkeypatch.setenv(ENV_LIMIT, "64M")
    guard_statistics(200, 10, 10_000, "x.npy")
    with pytest.raises(ResourceError, match=r"x\.npy: statistics would need .*Sxx and Syx \(60000 x 60000"):
        guard_statistics(60_000, 1, 1, "x.npy")


def test_deflated_torch_archive_counts_uncompressed(tmp_path: Path) -> None:
    import zipfile

    with zipfile.ZipFile(tmp_path / "m.pt", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("archive/data/0", bytes(50 * 2**20))
    assert (tmp_path / "m.pt").stat().st_size < 2**20
    assert load_estimate([tmp_path / "m.pt"]).bytes >= 3 * 50 * 2**20
