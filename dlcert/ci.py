"""CI conventions: defaults from ``[tool.dlcert]`` in the nearest ``pyproject.toml``, report
files (``--output``), and the GitHub step summary (``$GITHUB_STEP_SUMMARY``).

``[tool.dlcert]`` holds defaults for options, under the options' long names::

    [tool.dlcert]
    require = "critical"      # check
    format = "github"         # check (text/json/yaml also for landscape, recheck)
    color = "always"          # check, landscape, recheck
    quiet = false             # check, landscape, recheck
    gtol = 1e-6               # check
    ftol = 1e-9               # check
    layout = "rows"           # check, landscape, recheck
    eigs = 0                  # check
    time-budget = 30.0        # check
    plot-format = "png"       # check, landscape

An option given on the command line wins. The file searched is the first ``pyproject.toml`` in
the working directory or above it; one without ``[tool.dlcert]`` gives no defaults. An unknown
key or a value of the wrong kind is one error line naming the file and the key (exit 2).
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from dlcert.errors import InputError
from dlcert.writer import append_text, write_text

#: The commands each key applies to, and the name of the command's parameter.
_KEYS: dict[str, tuple[str, tuple[str, ...]]] = {
    "require": ("require", ("check",)),
    "format": ("fmt", ("check", "landscape", "recheck")),
    "color": ("color", ("check", "landscape", "recheck")),
    "quiet": ("quiet", ("check", "landscape", "recheck")),
    "gtol": ("gtol", ("check",)),
    "ftol": ("ftol", ("check",)),
    "layout": ("layout", ("check", "landscape", "recheck")),
    "eigs": ("eigs", ("check",)),
    "time-budget": ("time_budget", ("check",)),
    "plot-format": ("plot_format", ("check", "landscape")),
}
ALLOWED_KEYS = tuple(_KEYS)

_CHOICES = {
    "require": ("global", "critical", "decided", "any"),
    "format": ("text", "json", "yaml", "github"),
    "color": ("auto", "always", "never"),
    "layout": ("columns", "rows"),
    "plot-format": ("png", "svg"),
}
#: Formats commands other than ``check`` accept (``github`` is check's only).
_PLAIN_FORMATS = ("text", "json", "yaml")


def find_pyproject(start: Path | None = None) -> Path | None:
    """The nearest ``pyproject.toml``: in ``start`` (default: the working directory) or above."""
    here = Path(start if start is not None else Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / "pyproject.toml"
        if candidate.is_file():
            return candidate
    return None


def _check_value(key: str, value: Any, where: str) -> Any:
    if key in _CHOICES:
        if not isinstance(value, str) or value not in _CHOICES[key]:
            raise InputError(f"{where} must be one of {', '.join(_CHOICES[key])}, got {value!r}")
        return value
    if key == "quiet":
        if not isinstance(value, bool):
            raise InputError(f"{where} must be true or false, got {value!r}")
        return value
    if key == "eigs":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise InputError(f"{where} must be a non-negative integer, got {value!r}")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InputError(f"{where} must be a number, got {value!r}")
    if key in ("gtol", "ftol") and not 0 < value < 1:
        raise InputError(f"{where} must be a number in (0, 1), got {value!r}")
    if key == "time-budget" and value < 0:
        raise InputError(f"{where} must be >= 0, got {value!r}")
    return float(value)


def read_defaults(path: Path) -> dict[str, dict[str, Any]]:
    """``[tool.dlcert]`` of ``path`` as a click ``default_map``: command -> parameter -> value."""
    try:
        with open(path, "rb") as f:
            doc = tomllib.load(f)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML ({' '.join(str(exc).split())})") from exc
    table = doc.get("tool", {}).get("dlcert") if isinstance(doc.get("tool"), dict) else None
    if table is None:
        return {}
    if not isinstance(table, dict):
        raise InputError(f"{path}: [tool.dlcert] must be a table")
    unknown = [k for k in table if k not in _KEYS]
    if unknown:
        raise InputError(f"{path}: [tool.dlcert]: unknown key(s) {', '.join(map(repr, unknown))}; "
                         f"allowed keys: {', '.join(ALLOWED_KEYS)}")
    out: dict[str, dict[str, Any]] = {}
    for key, raw in table.items():
        value = _check_value(key, raw, f"{path}: [tool.dlcert] {key}")
        param, commands = _KEYS[key]
        for command in commands:
            if key == "format" and command != "check" and value not in _PLAIN_FORMATS:
                continue
            out.setdefault(command, {})[param] = value
    return out


def project_defaults(start: Path | None = None) -> tuple[Path | None, dict[str, dict[str, Any]]]:
    """The nearest ``pyproject.toml`` and its defaults (``(None, {})`` when there is none)."""
    path = find_pyproject(start)
    return (path, read_defaults(path)) if path is not None else (None, {})


def write_report(path: Path, text: str, what: str = "report", inputs: Iterable[Path] = ()) -> None:
    """Write a text report (``--output``) through the shared writer (:mod:`dlcert.writer`: atomic,
    umask, never over an input or a non-regular file)."""
    write_text(Path(path), text, inputs=inputs, what=f"the {what}")


def append_step_summary(text: str, environ: Mapping[str, str] | None = None) -> Path | None:
    """Append Markdown to ``$GITHUB_STEP_SUMMARY`` when it is set (GitHub's convention: the
    file collects every step's summary, so append, never replace). Returns the file or ``None``.
    """
    env = os.environ if environ is None else environ
    target = env.get("GITHUB_STEP_SUMMARY", "")
    if not target:
        return None
    append_text(Path(target), text, what="the step summary (GITHUB_STEP_SUMMARY)")
    return Path(target)
