"""The one way dlcert writes a file (``--witness``, ``--save-optimum``, ``stats -o``, ``--junit-xml``).

Every output goes through :func:`write_atomic`, which:

1. refuses the path (:func:`check_output`, also called by the CLI before any work) when it is
   one of the command's inputs (same file by ``os.path.samefile``: a hard link, a symbolic link
   or another spelling of an input counts), when something other than a regular file is there
   (a directory, a FIFO, a device, a socket) or when it is a symbolic link (renaming over it
   would replace the link, not write where it points), and when its directory does not exist;
2. writes a temporary file in the same directory, flushes it to disk, gives it the mode a new
   file would get (``0666`` minus the umask) or, when it replaces a file, that file's mode,
   checks the path again and renames the temporary file over it (``os.replace``, atomic: a
   reader sees the old file or the new one, never half of one);
3. removes the temporary file on any failure, on Ctrl-C and on ``SIGTERM``/``SIGHUP`` (the
   signal is turned into an exception for the duration of the write, then re-delivered, so the
   process still ends the way the signal says).

Every failure is one :class:`~dlcert.errors.InputError` line naming the path and the reason
(``no space left on device``, ``read-only file system``, ``permission denied``, ``file name
too long``), and nothing is written.
"""

from __future__ import annotations

import errno
import os
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import IO

from dlcert.errors import InputError

__all__ = ["check_output", "current_umask", "write_atomic", "write_text"]

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENAMETOOLONG: "file name too long",
    errno.ENOENT: "no such directory",
    errno.ENOTDIR: "a component of the path is not a directory",
    errno.ELOOP: "too many levels of symbolic links",
}
_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s)


def _reason(exc: OSError) -> str:
    if exc.errno in _REASONS:
        return _REASONS[exc.errno]
    return " ".join(str(exc.strerror or exc).split()) or type(exc).__name__


def _show(path: Path) -> str:
    text = str(path)
    text = text if text.isprintable() else repr(text)
    return text if len(text) <= 200 else text[:197] + "..."


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def current_umask() -> int:
    """The process's umask (from ``/proc/self/status`` when possible, without changing it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def check_output(path: Path, inputs: Iterable[Path | str | None] = (), what: str = "output") -> Path:
    """Refuse an output path that would destroy an input or is not a place for a regular file.

    Returns the path. See the module docstring for what is refused; ``what`` names the output
    in messages (``the witness``, ``the JUnit report``).
    """
    path = Path(path)
    shown = _show(path)
    try:
        st: os.stat_result | None = os.lstat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise InputError(f"{shown}: cannot write {what} ({_reason(exc)})") from None
    if st is not None:
        if stat.S_ISLNK(st.st_mode):
            raise InputError(
                f"{shown}: cannot write {what}: it is a symbolic link, which dlcert does not "
                "replace; write to the file it points to, or remove the link"
            )
        if not stat.S_ISREG(st.st_mode):
            raise InputError(
                f"{shown}: cannot write {what}: it is {_kind(st.st_mode)}; expected a regular "
                "file name"
            )
        for item in inputs:
            if item is None:
                continue
            try:
                same = os.path.samefile(path, item)
            except (OSError, ValueError):
                continue
            if same:
                raise InputError(
                    f"{shown}: cannot write {what}: it is also an input ({_show(Path(item))}), "
                    "which writing would destroy; choose another path"
                )
    parent = path.parent
    try:
        parent_st = os.stat(parent)
    except OSError as exc:
        raise InputError(
            f"{shown}: cannot write {what}: its directory {_show(parent)} "
            f"{'does not exist' if exc.errno == errno.ENOENT else 'is unusable (' + _reason(exc) + ')'}"
        ) from None
    if not stat.S_ISDIR(parent_st.st_mode):
        raise InputError(f"{shown}: cannot write {what}: {_show(parent)} is not a directory")
    return path


class _Terminated(BaseException):
    """A termination signal arrived while a temporary file existed."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _signals_raise() -> Iterator[None]:
    """Turn SIGTERM/SIGHUP into :class:`_Terminated` inside the block (main thread only), then
    re-deliver the signal with the previous handler restored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        raise _Terminated(signum)

    previous = {s: signal.signal(s, handler) for s in _SIGNALS}
    try:
        yield
    except _Terminated as exc:
        for s, h in previous.items():
            signal.signal(s, h)
        previous = {}
        os.kill(os.getpid(), exc.signum)
        raise SystemExit(128 + exc.signum) from None
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def write_atomic(
    path: Path,
    write: Callable[[IO[bytes]], None],
    *,
    inputs: Iterable[Path | str | None] = (),
    what: str = "output",
) -> None:
    """Write a file through ``write(binary_file)``, atomically (module docstring)."""
    inputs = list(inputs)
    path = check_output(path, inputs, what)
    shown = _show(path)
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        mode = 0o666 & ~current_umask()
    except OSError as exc:
        raise InputError(f"{shown}: cannot write {what} ({_reason(exc)})") from None
    with _signals_raise():
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".dlcert-", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as f:
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            check_output(path, inputs, what)  # again: the path may have changed meanwhile
            os.replace(tmp, path)
            tmp = None
        except OSError as exc:
            raise InputError(f"{shown}: cannot write {what}: {_reason(exc)}; nothing was written") from None
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass


def write_text(
    path: Path, text: str, *, inputs: Iterable[Path | str | None] = (), what: str = "output"
) -> None:
    """:func:`write_atomic` of UTF-8 text."""
    data = text.encode("utf-8")

    def write(f: IO[bytes]) -> None:
        f.write(data)

    write_atomic(path, write, inputs=inputs, what=what)


def append_text(path: Path, text: str, *, what: str = "output") -> None:
    """Append UTF-8 text to a regular file (created when absent): for files that collect output
    from several writers by convention, such as GitHub's ``$GITHUB_STEP_SUMMARY``. The target is
    checked like any output (:func:`check_output`: no link, directory, FIFO or device)."""
    path = check_output(path, (), what)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with os.fdopen(fd, "ab") as f:
            f.write(text.encode("utf-8"))
    except OSError as exc:
        raise InputError(f"{_show(path)}: cannot append {what} ({_reason(exc)})") from None
