"""YAML manifests (SPEC §6.1): one file naming the weights, the data and the tolerances.

::

    weights: model.npz            # or .safetensors/.pt; or  layers: [W1.npy, W2.npy]  or inline lists
    data: train.npz               # or  stats: train-stats.npz
    layout: columns               # columns = (d, m), rows = (m, d)
    tolerances: {gtol: 1.0e-6, ftol: 1.0e-9}
    widths: [4, 3, 2]             # dlcert landscape only

Paths are relative to the manifest's directory. Reading is ``yaml.safe_load`` only, after a
scan of the event stream that bounds the document (:data:`MAX_BYTES`, :data:`MAX_DEPTH`) and
rejects aliases (so no "billion laughs" expansion). Every problem is one :class:`InputError`
line naming the manifest and the key.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dlcert.datasets import load_statistics
from dlcert.errors import DlcertError, InputError
from dlcert.io import Layout, Problem, load_problem, problem_from
from dlcert.resources import guard_files, npy_file_header
from dlcert.statistics import Statistics
from dlcert.validation import (
    check_input_file,
    check_weight_chain,
    exception_summary,
    open_input,
    precision_of,
)

#: Largest manifest accepted, in bytes (inline matrices included).
MAX_BYTES = 1 << 20
#: Deepest nesting of mappings and sequences accepted.
MAX_DEPTH = 16

ALLOWED_KEYS = ("weights", "layers", "data", "stats", "layout", "tolerances", "widths", "checks")
#: Keys one entry of ``checks:`` may hold; the same keys at the top level are its defaults.
ENTRY_KEYS = ("weights", "layers", "data", "stats", "layout", "tolerances")
TOLERANCE_KEYS = ("gtol", "ftol")
MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest; paths are absolute (resolved against the manifest's directory).

    source : the manifest file. weights : ``.npz`` with ``W1..WN``, or a safetensors / PyTorch
    file (:mod:`dlcert.formats`), or ``None``.
    layers : per layer either an ``.npy`` path or an inline float64 matrix (or ``None``).
    data : raw or statistics ``.npz``; stats : statistics ``.npz`` (at most one of the two).
    layout : data layout or ``None`` (infer). gtol, ftol : tolerances or ``None`` (defaults).
    widths : ``[d_0, ..., d_N]`` for ``landscape`` (or ``None``).
    """

    source: Path
    weights: Path | None
    layers: tuple[Path | np.ndarray, ...] | None
    data: Path | None
    stats: Path | None
    layout: Layout | None
    gtol: float | None
    ftol: float | None
    widths: tuple[int, ...] | None

    @property
    def data_path(self) -> Path | None:
        return self.data if self.data is not None else self.stats


def is_manifest(path: Path) -> bool:
    """Whether ``path`` names a YAML manifest (by suffix)."""
    return Path(path).suffix.lower() in MANIFEST_SUFFIXES


def _one_line(text: object, limit: int = 160) -> str:
    out = " ".join(str(text).split())
    return out if len(out) <= limit else out[: limit - 3] + "..."


def _scan(text: str, source: str) -> None:
    """Reject aliases and deep nesting before anything is constructed."""
    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark is not None else "?"
                raise InputError(
                    f"{source}: line {line}: YAML aliases (*{event.anchor}) are not "
                    "accepted in manifests; write the value out"
                )
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    raise InputError(f"{source}: nesting deeper than {MAX_DEPTH} levels")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: not valid YAML ({_yaml_problem(exc)})") from None


def _yaml_problem(exc: BaseException) -> str:
    """What is wrong and where, without the snippet of the file PyYAML quotes."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        return _one_line(f"{exc.problem or exc.context or 'syntax error'}{where}", 160)
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return type(exc).__name__


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (PyYAML keeps the last
    value silently: a second ``data:`` line would replace the first unseen)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: construct_mapping reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                "while reading a mapping", node.start_mark, f"duplicate key {_one_line(repr(key), 40)}",
                key_node.start_mark,
            )
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _refuse_unknown(mapping: dict[Any, Any], allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in mapping if k not in allowed]
    if unknown:
        raise InputError(
            f"{where}: unknown key(s) {', '.join(repr(k) for k in unknown)}; allowed keys: "
            f"{', '.join(allowed)}"
        )


def parse_yaml(path: Path) -> dict[str, Any]:
    """The manifest's root mapping (bounded size, no aliases, ``yaml.safe_load``)."""
    path = Path(path)
    source = str(path)
    size = check_input_file(path, "a YAML manifest")
    if size > MAX_BYTES:
        raise InputError(f"{source}: manifest is {size} bytes; the limit is {MAX_BYTES}")
    try:
        with open_input(path, "a YAML manifest") as f:
            data = f.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise InputError(f"{source}: manifest is more than {MAX_BYTES} bytes (the limit)")
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source}: not UTF-8 text (byte {exc.start} is not UTF-8)") from None
    except OSError as exc:
        raise InputError(f"{source}: cannot read ({_one_line(exc.strerror or exc)})") from None
    _scan(text, source)
    try:
        root = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: builds only plain data
    except (yaml.YAMLError, RecursionError) as exc:
        raise InputError(f"{source}: not valid YAML ({_yaml_problem(exc)})") from None
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise InputError(f"{source}: a value cannot be read ({exception_summary(exc)})") from None
    if not isinstance(root, dict):
        raise InputError(
            f"{source}: the manifest must be a mapping of keys ({', '.join(ALLOWED_KEYS)}), "
            f"got {type(root).__name__}"
        )
    bad = [k for k in root if not isinstance(k, str)]
    if bad:
        raise InputError(f"{source}: key {bad[0]!r} is not a string; allowed keys: {', '.join(ALLOWED_KEYS)}")
    _refuse_unknown(root, ALLOWED_KEYS, source)
    return root


def _path(value: Any, key: str, base: Path, source: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InputError(f"{source}: {key} must be a file path (a string), got {type(value).__name__}")
    p = Path(value)
    return p if p.is_absolute() else base / p


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _inline_matrix(value: list[Any], key: str, source: str) -> np.ndarray:
    if not value or not all(isinstance(row, list) for row in value):
        raise InputError(f"{source}: {key} must be a list of rows (lists of numbers) or an .npy path")
    width = len(value[0])
    for i, row in enumerate(value):
        if len(row) != width:
            raise InputError(f"{source}: {key} row {i + 1} has {len(row)} entries but row 1 has {width}")
        for j, x in enumerate(row):
            if not _number(x):
                raise InputError(
                    f"{source}: {key}[{i + 1}][{j + 1}] is {x!r} ({type(x).__name__}); expected a number"
                )
    return np.array(value, dtype=np.float64)


def _layers(value: Any, base: Path, source: str) -> tuple[Path | np.ndarray, ...]:
    if not isinstance(value, list) or not value:
        raise InputError(f"{source}: layers must be a non-empty list (W1 first), got {type(value).__name__}")
    out: list[Path | np.ndarray] = []
    for i, item in enumerate(value, start=1):
        key = f"layers[{i}] (W{i})"
        if isinstance(item, list):
            out.append(_inline_matrix(item, key, source))
        else:
            out.append(_path(item, key, base, source))
    return tuple(out)


def _tolerances(value: Any, source: str) -> tuple[float | None, float | None]:
    if not isinstance(value, dict):
        raise InputError(f"{source}: tolerances must be a mapping {{gtol: ..., ftol: ...}}, "
                         f"got {type(value).__name__}")
    unknown = [k for k in value if k not in TOLERANCE_KEYS]
    if unknown:
        raise InputError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))} in tolerances; "
                         f"allowed: {', '.join(TOLERANCE_KEYS)}")
    out: list[float | None] = []
    for k in TOLERANCE_KEYS:
        out.append(tolerance_value(value.get(k), f"{source}: tolerances.{k}"))
    return out[0], out[1]


def tolerance_value(v: Any, where: str) -> float | None:
    """A tolerance in (0, 1) from YAML: a number, or a string that ``float()`` reads exactly.

    YAML 1.1 (PyYAML) reads ``1e-3`` as the string ``'1e-3'`` (its floats need a dot:
    ``1.0e-3``), so numeric strings are accepted -- parsed by ``float()`` alone, nothing else.
    """
    if v is None:
        return None
    x: float
    if isinstance(v, str):
        try:
            x = float(v)
        except ValueError:
            raise InputError(f"{where} must be a number in (0, 1), got the string {v!r}, which is "
                             "not a number") from None
    elif _number(v):
        x = float(v)
    else:
        raise InputError(f"{where} must be a number in (0, 1), got {v!r} ({type(v).__name__})")
    if not math.isfinite(x) or not 0 < x < 1:
        raise InputError(f"{where} must be a number in (0, 1), got {v!r}")
    return x


def _widths(value: Any, source: str) -> tuple[int, ...]:
    return parse_widths(value, f"{source}: widths")


#: Most digits one width may have (a wider layer could never be allocated anyway).
_MAX_WIDTH_DIGITS = 18


def parse_widths(value: Any, what: str = "--widths") -> tuple[int, ...]:
    """The one check of an architecture ``d0,...,dN``: ``"4,3,2"`` (the option, or a string in a
    manifest) or a list of integers -> ``(4, 3, 2)``; at least two positive integers."""
    if isinstance(value, str):
        tokens = value.replace(" ", "").split(",")
        if not all(t.isascii() and t.isdigit() and len(t) <= _MAX_WIDTH_DIGITS for t in tokens):
            shown = _one_line(repr(value), 80)
            raise InputError(f"{what}: {shown} is not a comma-separated list of integers d0,...,dN")
        ws = tuple(int(t) for t in tokens)
    elif isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        ws = tuple(value)
    else:
        shown = _one_line(repr(value), 80)
        raise InputError(f"{what} must be a list of at least two positive integers, got {shown}")
    if len(ws) < 2 or any(w < 1 for w in ws):
        shown = _one_line(repr(value), 80)
        if isinstance(value, list):
            raise InputError(f"{what} must be a list of at least two positive integers, got {shown}")
        raise InputError(f"{what}: {shown}: expected at least two positive integers d0,...,dN")
    return ws


def read_manifest(path: Path) -> Manifest:
    """Parse and type-check a manifest (files are not opened yet)."""
    path = Path(path)
    root = parse_yaml(path)
    if "checks" in root:
        read_check_list(path)  # a malformed list is reported as such
        raise InputError(
            f"{path}: lists several checks (checks:); `dlcert check {path}` runs them, "
            "other commands take a manifest of one"
        )
    return _from_root(root, path, str(path))


def read_check_list(path: Path) -> list[Manifest] | None:
    """The entries of a manifest's ``checks:`` list (``None`` when it has none).

    Each entry holds the keys of a single-check manifest (:data:`ENTRY_KEYS`); the same keys at
    the top level are defaults that an entry overrides (``weights``/``layers`` and
    ``data``/``stats`` count as one key each).
    """
    path = Path(path)
    source = str(path)
    root = parse_yaml(path)
    if "checks" not in root:
        return None
    checks = root["checks"]
    if not isinstance(checks, list) or not checks:
        raise InputError(f"{source}: checks must be a non-empty list of mappings")
    if "widths" in root:
        raise InputError(f"{source}: widths is for dlcert landscape, not for a list of checks")
    defaults = {k: v for k, v in root.items() if k in ENTRY_KEYS}
    out = []
    for i, entry in enumerate(checks, start=1):
        where = f"{source}: checks[{i}]"
        if not isinstance(entry, dict):
            raise InputError(f"{where} must be a mapping of {', '.join(ENTRY_KEYS)}")
        _refuse_unknown(entry, ENTRY_KEYS, where)
        merged = dict(defaults)
        for pair in (("weights", "layers"), ("data", "stats")):
            if any(k in entry for k in pair):
                for k in pair:
                    merged.pop(k, None)
        merged.update(entry)
        out.append(_from_root(merged, path, where))
    return out


def _from_root(root: dict[str, Any], path: Path, source: str) -> Manifest:
    """A :class:`Manifest` from a checked mapping; ``source`` names it in messages."""
    base = path.parent
    if "weights" in root and "layers" in root:
        raise InputError(f"{source}: give either weights or layers, not both")
    if "data" in root and "stats" in root:
        raise InputError(f"{source}: give either data or stats, not both")
    layout = None
    if "layout" in root:
        v = root["layout"]
        if v not in ("columns", "rows"):
            raise InputError(f"{source}: layout must be columns or rows, got {v!r}")
        layout = Layout(v)
    gtol = ftol = None
    if "tolerances" in root:
        gtol, ftol = _tolerances(root["tolerances"], source)
    return Manifest(
        source=path,
        weights=_path(root["weights"], "weights", base, source) if "weights" in root else None,
        layers=_layers(root["layers"], base, source) if "layers" in root else None,
        data=_path(root["data"], "data", base, source) if "data" in root else None,
        stats=_path(root["stats"], "stats", base, source) if "stats" in root else None,
        layout=layout,
        gtol=gtol,
        ftol=ftol,
        widths=_widths(root["widths"], source) if "widths" in root else None,
    )


def _load_layer(item: Path | np.ndarray, i: int, source: str) -> np.ndarray:
    if isinstance(item, np.ndarray):
        return item
    try:
        npy_file_header(item)  # regular file, header matches the size: np.load allocates safely
        with open_input(item, "an .npy matrix") as f:
            a = np.load(f, allow_pickle=False)
    except InputError as exc:
        raise InputError(f"{source}: layers[{i}]: {exc}") from None
    except (OSError, ValueError, EOFError, SyntaxError, TypeError, OverflowError) as exc:
        raise InputError(
            f"{source}: layers[{i}]: {item}: not a readable .npy array ({exception_summary(exc)})"
        ) from None
    if not isinstance(a, np.ndarray):
        raise InputError(f"{source}: layers[{i}]: {item}: is an .npz archive; expected one .npy matrix")
    return a


def manifest_problem(m: Manifest, data: Path | None = None, layout: Layout | None = None) -> Problem:
    """Weights and data of a manifest as a :class:`~dlcert.io.Problem` (``data``/``layout`` override)."""
    source = str(m.source)
    data_path = data if data is not None else m.data_path
    lay = layout if layout is not None else m.layout
    if m.weights is not None:
        return load_problem(m.weights, data_path, lay)
    if m.layers is None:
        raise InputError(f"{source}: no weights: give weights (an .npz) or layers")
    guard_files([*(p for p in m.layers if isinstance(p, Path)), data_path], raw_in_chunks=True)
    raw = [_load_layer(item, i, source) for i, item in enumerate(m.layers, start=1)]
    weights = check_weight_chain(raw, source)
    if data_path is None:
        raise InputError(f"{source}: no data: give data or stats (layers carry no data)")
    return problem_from(weights, precision_of(*raw), source, data_path, lay)


def input_paths(paths: Iterable[Path | None]) -> list[Path]:
    """Every file a command reads: the paths given and, for a manifest, the files it names.

    Best effort (an unreadable manifest names none; its error comes when it is loaded): the
    writer refuses to write over any of these (:func:`dlcert.writer.check_output`).
    """
    out: list[Path] = []
    for p in paths:
        if p is None:
            continue
        out.append(Path(p))
        if not is_manifest(Path(p)):
            continue
        try:
            entries = read_check_list(Path(p)) or [read_manifest(Path(p))]
        except DlcertError:
            continue
        for m in entries:
            out += [x for x in (m.weights, m.data, m.stats) if x is not None]
            out += [x for x in (m.layers or ()) if isinstance(x, Path)]
    return out


def check_manifest_widths(m: Manifest, weights: tuple[np.ndarray, ...] | list[np.ndarray]) -> None:
    """Refuse a manifest whose ``widths:`` contradicts the widths of its weights."""
    if m.widths is None:
        return
    actual = (int(weights[0].shape[1]), *(int(w.shape[0]) for w in weights))
    if tuple(m.widths) != actual:
        raise InputError(
            f"{m.source}: widths: {list(m.widths)} but the weights have widths {list(actual)}; "
            "fix widths or remove it"
        )


def load_check_input(
    weights: Path, data: Path | None, layout: Layout | None, gtol: float | None, ftol: float | None
) -> tuple[Problem, float | None, float | None]:
    """What ``dlcert check`` needs from WEIGHTS, a ``.npz`` or a manifest; options override it."""
    if not is_manifest(weights):
        return load_problem(weights, data, layout), gtol, ftol
    m = read_manifest(weights)
    problem = manifest_problem(m, data, layout)
    check_manifest_widths(m, problem.weights)
    return (
        problem,
        gtol if gtol is not None else m.gtol,
        ftol if ftol is not None else m.ftol,
    )


@dataclass(frozen=True)
class LandscapeInput:
    """What ``dlcert landscape`` needs: statistics, widths, tolerances.

    weights : the point of a manifest that names one (``None`` otherwise); landscape maps the
    data and widths and may mark the point's loss on the ladder.
    """

    stats: Statistics
    widths: tuple[int, ...]
    gtol: float | None
    ftol: float | None
    weights: tuple[np.ndarray, ...] | None = None


def load_landscape_input(
    data: Path, widths: tuple[int, ...] | None, layout: Layout | None
) -> LandscapeInput:
    """DATA (an ``.npz`` or a manifest) and the widths (option over manifest) for ``landscape``.

    A manifest that serves ``check`` serves ``landscape`` too: its data, its ``widths:`` (which
    must agree with its weights) or else the widths of its weights; ``--widths`` overrides both
    and must agree with the weights as well.
    """
    gtol = ftol = None
    if is_manifest(data):
        m = read_manifest(data)
        layout = layout if layout is not None else m.layout
        gtol, ftol = m.gtol, m.ftol
        if m.weights is not None or m.layers is not None:
            problem = manifest_problem(m, None, layout)
            check_manifest_widths(m, problem.weights)
            own = (int(problem.weights[0].shape[1]), *(int(w.shape[0]) for w in problem.weights))
            if widths is not None and tuple(widths) != own:
                raise InputError(
                    f"--widths {','.join(map(str, widths))} but the weights of {data} have widths "
                    f"{','.join(map(str, own))}"
                )
            return LandscapeInput(problem.stats, own, gtol, ftol, tuple(problem.weights))
        if m.data_path is None:
            raise InputError(f"{data}: no data: give data or stats")
        widths = widths if widths is not None else m.widths
        data = m.data_path
    if widths is None:
        raise InputError("no widths: pass --widths d0,d1,...,dN (or widths: in the manifest)")
    stats = load_statistics(data, (widths[0], widths[-1]), layout)
    return LandscapeInput(stats, widths, gtol, ftol)
