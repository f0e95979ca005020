"""The one output writer (dlcert.writer): never over an input, only regular files, umask,
atomic rename, no temporary file left behind (failure, SIGTERM), one clear line per failure."""

from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import IO

import numpy as np
import pytest

from dlcert.errors import InputError
from dlcert.io import save_statistics, save_weights
from dlcert.statistics import Statistics
from dlcert.writer import check_output, current_umask, write_atomic, write_text


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith(".dlcert-"))


def test_writes_atomically_with_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "hello")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").read_text() == "hello"
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []


def test_replacing_keeps_the_existing_mode(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    target.write_text("old")
    target.chmod(0o604)
    write_text(target, "new")
    assert target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o604


def test_current_umask_does_not_change_it() -> None:
    old = os.umask(0o077)
    try:
        assert current_umask() == 0o077
        assert current_umask() == 0o077
    finally:
        os.umask(old)


@pytest.mark.parametrize("spelling", ["same", "dotdot", "symlink", "hardlink"])
def test_refuses_an_input_under_any_name(tmp_path: Path, spelling: str) -> None:
    (tmp_path / "sub").mkdir()
    src = tmp_path / "in.npz"
    src.write_bytes(b"precious")
    out = {
        "same": src,
        "dotdot": tmp_path / "sub" / ".." / "in.npz",
        "symlink": tmp_path / "sub" / "in-link.npz",
        "hardlink": tmp_path / "sub" / "in-hard.npz",
    }[spelling]
    if spelling == "hardlink":
        os.link(src, out)
    inputs: list[Path] = [src]
    if spelling == "symlink":
        out.symlink_to(src)
        inputs = [out]  # the user named the link as the input and as the output
    with pytest.raises(InputError, match=r"cannot write the witness: it is (also an input|a symbolic)"):
        write_text(out, "x", inputs=inputs, what="the witness")
    assert src.read_bytes() == b"precious"
    assert _leftovers(tmp_path) == [] and _leftovers(tmp_path / "sub") == []


def test_refuses_non_regular_targets(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "elsewhere")
    cases = {
        tmp_path: "is a directory",
        fifo: r"is a FIFO",
        Path("/dev/null"): "is a character device",
        link: "symbolic link",
        tmp_path / "missing" / "x.npz": "directory .*missing does not exist",
        tmp_path / ("x" * 300): "file name too long",
    }
    for path, pattern in cases.items():
        with pytest.raises(InputError, match=pattern):
            write_text(path, "x")
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()
    assert _leftovers(tmp_path) == []


def test_full_filesystem_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    """ENOSPC in the middle of a write (as a full disk gives it): one line, no file, no temp."""
    target = tmp_path / "out.npz"
    target.write_bytes(b"previous")

    def write(f: IO[bytes]) -> None:
        f.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    pattern = r"out\.npz: cannot write the statistics: no space left on device; nothing was written"
    with pytest.raises(InputError, match=pattern):
        write_atomic(target, write, what="the statistics")
    assert target.read_bytes() == b"previous" and _leftovers(tmp_path) == []


def test_full_filesystem_on_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fsync(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(InputError, match="no space left on device"):
        save_weights(tmp_path / "w.npz", [np.eye(2)])
    assert list(tmp_path.iterdir()) == []


def _mount(args: list[str]) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


def test_real_tiny_filesystem(tmp_path: Path) -> None:
    """On a real 64 KiB tmpfs (needs root; skipped otherwise) a large write fails cleanly."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if not _mount(["-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)]):
        pytest.skip("cannot mount a tmpfs here (not root or not permitted)")
    try:
        stats = Statistics(Sxx=np.eye(200), Syx=np.ones((3, 200)), syy=1e6, m=500)
        with pytest.raises(InputError, match=r"s\.npz: cannot write the statistics: no space left on device"):
            save_statistics(mnt / "s.npz", stats)
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_read_only_directory(tmp_path: Path) -> None:
    """A read-only place: a read-only mount when root (permissions do not stop root), else a
    directory without write permission."""
    ro = tmp_path / "ro"
    ro.mkdir()
    mounted = _mount(["-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(ro)])
    if not mounted:
        if os.geteuid() == 0:
            pytest.skip("root, and cannot mount a read-only tmpfs here")
        ro.chmod(0o555)
    try:
        pattern = r"w\.npz: cannot write the weights: (read-only file system|permission denied)"
        with pytest.raises(InputError, match=pattern):
            save_weights(ro / "w.npz", [np.eye(2)])
        assert list(ro.iterdir()) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(ro)], check=False)
        else:
            ro.chmod(0o755)


def test_sigterm_during_a_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from dlcert.writer import write_atomic
        def write(f):
            f.write(b"x" * 1000)
            f.flush()
            print("writing", flush=True)
            time.sleep(60)
        write_atomic(Path({str(tmp_path / "out.bin")!r}), write)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    assert len(_leftovers(tmp_path)) == 1  # the temporary file exists while writing
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == -signal.SIGTERM  # still ends the way SIGTERM says
    assert list(tmp_path.iterdir()) == []


def test_check_output_accepts_a_fresh_name(tmp_path: Path) -> None:
    assert check_output(tmp_path / "new.npz", [tmp_path / "missing-input.npz"]) == tmp_path / "new.npz"


def test_no_module_writes_files_but_the_writer() -> None:
    """One writer: no other module of the package renames, creates temporary files or opens
    files for writing (np.savez appears only inside a write callback handed to the writer)."""
    import re

    import dlcert

    package = Path(dlcert.__file__).parent
    forbidden = re.compile(
        r"os\.replace|os\.rename|tempfile\.|mkstemp|\.write_text\(|\.write_bytes\(|"
        r"open\([^)]*['\"][wax]b?['\"]|np\.save\(|\.tofile\("
    )
    offenders = []
    for path in sorted(package.rglob("*.py")):
        if path.name == "writer.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if forbidden.search(line):
                offenders.append(f"{path.relative_to(package)}:{number}: {line.strip()}")
    savez = [
        f"{p.relative_to(package)}:{n}"
        for p in sorted(package.rglob("*.py"))
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if "np.savez" in line and "write_atomic" not in line and "lambda f:" not in line
    ]
    assert offenders == [] and savez == []
