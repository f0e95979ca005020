"""A deterministic corpus of malformed inputs for the CI gate (SPEC §6: bad input -> exit 2).

``generate(directory)`` writes several hundred distinct bad files and returns one :class:`Case`
per bad input: which file(s) to load, and substrings the one-line ``InputError`` must contain.
``controls(directory)`` writes the valid files the bad ones were derived from, so a test can
show that each case fails because of its defect and not because the base is broken.

Files are written byte for byte the same on every run: arrays come from a fixed seed and zip
members carry a fixed timestamp (``np.savez`` would stamp the current time).

Extension point: each generator is a function ``(directory, base) -> list[Case]`` registered in
:data:`GENERATORS`; a case's ``kind`` names the loader the test uses (``"npz"`` runs
:func:`dlcert.io.load_problem`). To add YAML manifests, write a generator whose cases have
``kind="yaml"`` and ``weights`` pointing at the manifest, and register a ``"yaml"`` loader in
``tests/test_malformed_corpus.py``. Run ``python tests/malformed_corpus.py DIR`` to write the
corpus to ``DIR`` and list it.
"""

from __future__ import annotations

import io
import sys
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SEED = 1234
_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Case:
    """One malformed input.

    name : unique, stable identifier (used as the pytest id).
    weights : the main input file (an ``.npz``; for other kinds, whatever that loader takes).
    expect : substrings the error message must contain (besides the blamed file's name).
    data : the ``--data`` file, if any.
    layout : the ``--layout`` option (``"columns"``, ``"rows"`` or ``None``).
    kind : which loader runs the case (``"npz"``; later ``"yaml"``, ...).
    blame : the file the message must name; ``None`` means ``weights``.
    """

    name: str
    weights: Path
    expect: tuple[str, ...]
    data: Path | None = None
    layout: str | None = None
    kind: str = "npz"
    blame: Path | None = None

    @property
    def blamed(self) -> Path:
        return self.blame if self.blame is not None else self.weights

    @property
    def files(self) -> tuple[Path, ...]:
        return (self.weights,) if self.data is None else (self.weights, self.data)


Member = np.ndarray | bytes


def npy_bytes(array: np.ndarray) -> bytes:
    """``array`` as .npy bytes; object arrays are pickled (that is what makes them bad)."""
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


def write_zip(path: Path, members: Sequence[tuple[str, Member]], compress: bool = False) -> Path:
    """Write ``members`` (member name, array or raw bytes) as a zip with fixed timestamps."""
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, payload in members:
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.compress_type = method
            data = payload if isinstance(payload, bytes) else npy_bytes(payload)
            zf.writestr(info, data)
    return path


def write_npz(path: Path, arrays: Mapping[str, Member], compress: bool = False) -> Path:
    """Write named arrays like ``np.savez`` (``NAME.npy`` members), deterministically."""
    return write_zip(path, [(f"{k}.npy", v) for k, v in arrays.items()], compress)


@dataclass(frozen=True)
class Base:
    """The valid network and data every bad case is derived from: widths 4 -> 3 -> 3 -> 2."""

    weights: dict[str, np.ndarray] = field(default_factory=dict)
    X: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    Y: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))

    @property
    def dx(self) -> int:
        return int(self.X.shape[0])

    @property
    def dy(self) -> int:
        return int(self.Y.shape[0])

    def stats(self) -> dict[str, np.ndarray]:
        X, Y = self.X, self.Y
        return {
            "Sxx": X @ X.T,
            "Syx": Y @ X.T,
            "syy": np.array(float(np.sum(Y * Y))),
            "m": np.array(X.shape[1]),
        }

    def model(self) -> dict[str, np.ndarray]:
        return {**self.weights, "X": self.X, "Y": self.Y}


def make_base() -> Base:
    rng = np.random.default_rng(SEED)
    widths = [4, 3, 3, 2]
    weights = {
        f"W{i}": rng.standard_normal((widths[i], widths[i - 1])) for i in range(1, len(widths))
    }
    return Base(weights, rng.standard_normal((4, 12)), rng.standard_normal((2, 12)))


Generator = Callable[[Path, Base], list[Case]]


# ------------------------------------------------------------------------------- file level


def _file_level(d: Path, base: Base) -> list[Case]:
    cases: list[Case] = []

    def add(name: str, path: Path, *expect: str) -> None:
        cases.append(Case(name, path, expect))

    add("file-missing", d / "file-missing.npz", "no such file")
    (d / "file-directory.npz").mkdir()
    add("file-directory", d / "file-directory.npz", "is a directory")
    p = d / "file-empty.npz"
    p.write_bytes(b"")
    add("file-empty", p, "is empty (0 bytes)")
    p = d / "file-text.npz"
    p.write_text("W1: [[1, 2], [3, 4]]\n")
    add("file-text", p, "is not an .npz archive", "a zip file")  # no echo of the file's bytes
    p = d / "file-npy.npz"
    p.write_bytes(npy_bytes(base.weights["W1"]))
    add("file-npy", p, "is a single .npy array")
    p = d / "file-random.npz"
    p.write_bytes(np.random.default_rng(SEED).bytes(300).replace(b"PK", b"pk"))
    add("file-random", p, "is not an .npz archive")
    p = d / "file-gzip.npz"
    p.write_bytes(b"\x1f\x8b\x08\x00" + bytes(40))
    add("file-gzip", p, "is not an .npz archive", "a zip file")
    p = d / "file-pk-only.npz"
    p.write_bytes(b"PK\x03\x04")
    add("file-pk-only", p, "corrupt or truncated .npz archive")
    add("zip-empty", write_zip(d / "zip-empty.npz", []), "no weights")
    add(
        "zip-text-member",
        write_zip(
            d / "zip-text-member.npz",
            [("W1.npy", npy_bytes(base.weights["W1"])), ("notes.txt", b"hello")],
        ),
        "member notes.txt is not a .npy array",
    )
    add(
        "zip-json-member",
        write_zip(d / "zip-json-member.npz", [("config.json", b"{}")]),
        "member config.json is not a .npy array",
    )
    add(
        "zip-garbage-npy",
        write_zip(d / "zip-garbage-npy.npz", [("W1.npy", b"\x93NUMPY\x01\x00\xff\xffgarbage")]),
        "corrupt or truncated",
    )
    add(
        "zip-no-magic-npy",
        write_zip(d / "zip-no-magic-npy.npz", [("W1.npy", b"this is not an array at all")]),
        "corrupt or truncated",
    )
    raw = npy_bytes(base.weights["W1"])
    add(
        "zip-npy-version-9",
        write_zip(d / "zip-npy-version-9.npz", [("W1.npy", raw[:6] + b"\x09\x00" + raw[8:])]),
        "corrupt or truncated",
    )
    add(
        "zip-npy-header-lies",
        write_zip(d / "zip-npy-header-lies.npz", [("W1.npy", raw.replace(b"(3, 4)", b"(9, 9)"))]),
        "W1 declares shape (9, 9)",
        "648 bytes",
    )
    huge = raw.replace(b"(3, 4), ", b"(10000000000, 10000000),")
    add(
        "zip-npy-header-huge",
        write_zip(d / "zip-npy-header-huge.npz", [("W1.npy", huge)]),
        "W1 declares shape (10000000000, 10000000)",
    )
    add(
        "zip-npy-truncated-payload",
        write_zip(d / "zip-npy-truncated-payload.npz", [("W1.npy", raw[:-8])]),
        "W1 declares shape (3, 4)",
        "88 bytes",
    )
    p = write_npz(d / "zip-bad-method.npz", base.model())
    buf = bytearray(p.read_bytes())
    for sig, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        start = 0
        while (at := buf.find(sig, start)) >= 0:
            buf[at + offset : at + offset + 2] = (99).to_bytes(2, "little")
            start = at + 4
    p.write_bytes(bytes(buf))
    add("zip-bad-method", p, "corrupt or truncated", "compression method")
    return cases


def _truncated(d: Path, base: Base) -> list[Case]:
    cases: list[Case] = []
    for compress in (False, True):
        tag = "deflated" if compress else "stored"
        full = write_npz(d / f"full-{tag}.npz", base.model(), compress)
        data = full.read_bytes()
        full.unlink()
        n_cuts = 60 if not compress else 25
        cuts = sorted({0, 1, 2, 3, *np.linspace(4, len(data) - 1, n_cuts).astype(int).tolist()})
        for cut in cuts:
            if compress and cut < 4:
                continue  # the same bytes as the stored cases
            p = d / f"trunc-{tag}-{cut:05d}.npz"
            p.write_bytes(data[:cut])
            if cut == 0:
                expect: tuple[str, ...] = ("is empty (0 bytes)",)
            elif cut < 4:
                expect = ("is not an .npz archive",)
            else:
                expect = ("corrupt or truncated .npz archive",)
            cases.append(Case(p.stem, p, expect))
    return cases


def _flipped(d: Path, base: Base) -> list[Case]:
    """One byte flipped inside a member's .npy bytes: the CRC (or the header) catches it."""
    cases: list[Case] = []
    full = write_npz(d / "flip-base.npz", base.model())
    data = full.read_bytes()
    full.unlink()
    starts = []
    at = data.find(b"\x93NUMPY")
    while at >= 0:
        starts.append(at)
        at = data.find(b"\x93NUMPY", at + 1)
    for member, start in zip(base.model(), starts, strict=True):
        for rel in (0, 9, 60, 127, 128, 140):  # magic, header text, padding, data
            buf = bytearray(data)
            buf[start + rel] ^= 0x5A
            p = d / f"flip-{member}-{rel:03d}.npz"
            p.write_bytes(bytes(buf))
            cases.append(Case(p.stem, p, ("corrupt or truncated",)))
    return cases


# ------------------------------------------------------------------------------- dtypes


_BAD_DTYPES: list[tuple[str, Callable[[tuple[int, ...]], np.ndarray], str]] = [
    ("complex128", lambda s: np.ones(s, dtype=np.complex128), "dtype complex128"),
    ("complex64", lambda s: np.ones(s, dtype=np.complex64), "dtype complex64"),
    ("bool", lambda s: np.ones(s, dtype=bool), "dtype bool"),
    ("unicode", lambda s: np.full(s, "1.5"), "dtype <U3"),
    ("bytes", lambda s: np.full(s, b"1.5"), "dtype |S3"),
    ("datetime", lambda s: np.zeros(s, dtype="datetime64[s]"), "dtype datetime64[s]"),
    ("timedelta", lambda s: np.zeros(s, dtype="timedelta64[ms]"), "dtype timedelta64[ms]"),
    (
        "structured",
        lambda s: np.zeros(s, dtype=[("a", "<f8"), ("b", "<i4")]),
        "dtype [('a', '<f8'), ('b', '<i4')] (a structured",
    ),
    ("void", lambda s: np.zeros(s, dtype="V8"), "dtype |V8"),
]


def _dtypes(d: Path, base: Base) -> list[Case]:
    cases: list[Case] = []
    model = base.model()
    for target in ("W1", "W2", "W3", "X", "Y"):
        for tag, make, expect in _BAD_DTYPES:
            arrays = dict(model)
            arrays[target] = make(model[target].shape)
            p = write_npz(d / f"dtype-{target}-{tag}.npz", arrays)
            cases.append(Case(p.stem, p, (f"{target} has {expect}",)))
    for target in ("W1", "W2", "W3", "X", "Y", "meta_note"):
        arrays = dict(model)
        shape = model[target].shape if target in model else ()
        obj = np.empty(shape, dtype=object)
        obj[...] = 1.0
        arrays[target] = obj
        p = write_npz(d / f"pickle-{target}.npz", arrays)
        cases.append(Case(p.stem, p, (f"array {target} has dtype object", "needs pickle")))
    p = write_npz(
        d / "pickle-list.npz", {**model, "W2": np.array([[1.0], [1.0, 2.0]], dtype=object)}
    )
    cases.append(Case(p.stem, p, ("array W2 has dtype object",)))
    # mixed: float32 W1, int W2 are fine; the complex W3 is what fails
    arrays = {
        **model,
        "W1": model["W1"].astype(np.float32),
        "W2": model["W2"].astype(np.int16),
        "W3": model["W3"].astype(np.complex64),
    }
    p = write_npz(d / "dtype-mixed.npz", arrays)
    cases.append(Case(p.stem, p, ("W3 has dtype complex64",)))
    stats = base.stats()
    for target, tag, value, expect in [
        ("Sxx", "complex", stats["Sxx"].astype(complex), "Sxx has dtype complex128"),
        ("Sxx", "unicode", np.full((4, 4), "1"), "Sxx has dtype <U1"),
        ("Sxx", "bool", np.eye(4, dtype=bool), "Sxx has dtype bool"),
        ("Syx", "complex", stats["Syx"].astype(np.complex64), "Syx has dtype complex64"),
        ("Syx", "bytes", np.full((2, 4), b"x"), "Syx has dtype |S1"),
        ("syy", "complex", np.array(1 + 2j), "syy has dtype complex128"),
        ("syy", "unicode", np.array("12.5"), "syy has dtype <U4"),
        ("m", "bool", np.array(True), "m has dtype bool"),
        ("m", "unicode", np.array("12"), "m has dtype <U2"),
        ("m", "datetime", np.array(12, dtype="datetime64[D]"), "m has dtype datetime64[D]"),
    ]:
        p = write_npz(
            d / f"dtype-stats-{target}-{tag}.npz", {**base.weights, **stats, target: value}
        )
        cases.append(Case(p.stem, p, (expect,)))
    return cases


# ------------------------------------------------------------------------------- values


def _non_finite(d: Path, base: Base) -> list[Case]:
    cases: list[Case] = []
    model = base.model()
    stats = base.stats()
    for target in ("W1", "W2", "W3", "X", "Y", "Sxx", "Syx"):
        source = {**base.weights, **(stats if target in stats else {"X": base.X, "Y": base.Y})}
        shape = source[target].shape
        for where, index in (
            ("first", (0, 0)),
            ("middle", (1, 1)),
            ("last", (shape[0] - 1, shape[1] - 1)),
        ):
            for tag, bad in (("nan", np.nan), ("inf", np.inf), ("ninf", -np.inf)):
                arrays = dict(source)
                arrays[target] = arrays[target].copy()
                arrays[target][index] = bad
                counts = "1 NaN, 0 Inf" if tag == "nan" else "0 NaN, 1 Inf"
                p = write_npz(d / f"nonfinite-{target}-{where}-{tag}.npz", arrays)
                cases.append(
                    Case(
                        p.stem,
                        p,
                        (
                            f"{target} has 1 non-finite value(s) ({counts})",
                            f"first at index {index}",
                        ),
                    )
                )
    for target in ("W2", "X"):
        arrays = dict(model)
        arrays[target] = np.full(model[target].shape, np.nan)
        n = model[target].size
        p = write_npz(d / f"nonfinite-{target}-all.npz", arrays)
        cases.append(
            Case(
                p.stem,
                p,
                (f"{target} has {n} non-finite value(s) ({n} NaN, 0 Inf)", "first at index (0, 0)"),
            )
        )
    # rows layout: the index refers to the array as stored
    Xr = base.X.T.copy()
    Xr[7, 2] = np.inf
    p = write_npz(d / "nonfinite-X-rows.npz", {**base.weights, "X": Xr, "Y": base.Y.T})
    cases.append(Case(p.stem, p, ("X has 1 non-finite", "first at index (7, 2)")))
    for target, tag, value, expect in [
        ("syy", "nan", np.array(np.nan), "syy is nan"),
        ("syy", "inf", np.array(np.inf), "syy is inf"),
        ("m", "nan", np.array(np.nan), "m is nan"),
        ("m", "inf", np.array(np.inf), "m is inf"),
    ]:
        p = write_npz(d / f"nonfinite-{target}-{tag}.npz", {**base.weights, **stats, target: value})
        cases.append(Case(p.stem, p, (expect,)))
    # a float32 value beyond float32 range cannot be stored; a longdouble one beyond float64 can
    if np.finfo(np.longdouble).max > np.finfo(np.float64).max:
        big = base.weights["W1"].astype(np.longdouble)
        big[2, 3] = np.longdouble(np.finfo(np.float64).max) * 4
        p = write_npz(d / "nonfinite-W1-longdouble-overflow.npz", {**model, "W1": big})
        cases.append(
            Case(
                p.stem, p, ("W1 has 1 non-finite value(s) (0 NaN, 1 Inf)", "first at index (2, 3)")
            )
        )
    return cases


# ------------------------------------------------------------------------------- shapes


def _shapes(d: Path, base: Base) -> list[Case]:
    cases: list[Case] = []
    model = base.model()

    def add(name: str, arrays: Mapping[str, np.ndarray], *expect: str) -> None:
        p = write_npz(d / f"{name}.npz", arrays)
        cases.append(Case(name, p, expect))

    for target in ("W1", "W2", "W3"):
        w = model[target]
        add(
            f"shape-{target}-1d",
            {**model, target: w.ravel()},
            f"{target} has shape ({w.size},) (1-d",
        )
        add(
            f"shape-{target}-3d",
            {**model, target: w.reshape(1, *w.shape)},
            f"{target} has shape (1, {w.shape[0]}, {w.shape[1]}) (3-d",
        )
        add(f"shape-{target}-0d", {**model, target: np.array(1.0)}, f"{target} has shape () (0-d")
        add(
            f"shape-{target}-zero-rows",
            {**model, target: np.zeros((0, w.shape[1]))},
            f"{target} has shape (0, {w.shape[1]}) (zero-size)",
        )
        add(
            f"shape-{target}-zero-cols",
            {**model, target: np.zeros((w.shape[0], 0))},
            f"{target} has shape ({w.shape[0]}, 0) (zero-size)",
        )
    add(
        "shape-X-zero-samples",
        {**model, "X": np.zeros((4, 0)), "Y": np.zeros((2, 0))},
        "X has shape (4, 0) (zero-size)",
    )
    add("shape-Y-zero-samples", {**model, "Y": np.zeros((2, 0))}, "Y has shape (2, 0) (zero-size)")
    add("shape-X-1d", {**model, "X": base.X[0]}, "X is 1-d with 12 entries", "dx = 4")
    add("shape-Y-1d", {**model, "Y": base.Y[0]}, "Y is 1-d with 12 entries", "dy = 2")
    add("shape-X-3d", {**model, "X": base.X.reshape(4, 3, 4)}, "X has shape (4, 3, 4) (3-d")
    add("shape-Y-3d", {**model, "Y": base.Y.reshape(1, 2, 12)}, "Y has shape (1, 2, 12) (3-d")
    add("shape-X-0d", {**model, "X": np.array(1.0)}, "X has shape () (0-d")
    stats = base.stats()
    add("shape-Sxx-1d", {**base.weights, **stats, "Sxx": np.ones(16)}, "Sxx has shape (16,) (1-d")
    add(
        "shape-Syx-3d",
        {**base.weights, **stats, "Syx": np.ones((1, 2, 4))},
        "Syx has shape (1, 2, 4) (3-d",
    )
    add(
        "shape-Sxx-zero",
        {**base.weights, **stats, "Sxx": np.ones((0, 0))},
        "Sxx has shape (0, 0) (zero-size)",
    )
    return cases


def _chains(d: Path, base: Base) -> list[Case]:
    """Shape chains that do not compose, for depths 1..5 and a break at every junction."""
    cases: list[Case] = []
    rng = np.random.default_rng(SEED + 1)
    for n_layers in (2, 3, 4, 5):
        widths = [int(w) for w in rng.integers(2, 6, size=n_layers + 1)]
        X = rng.standard_normal((widths[0], 9))
        Y = rng.standard_normal((widths[-1], 9))
        for junction in range(1, n_layers):  # W_{junction+1} against W_junction
            for delta in (1, -1):
                bad = widths[junction] + delta
                if bad < 1:
                    continue
                arrays: dict[str, np.ndarray] = {}
                for i in range(1, n_layers + 1):
                    cols = bad if i == junction + 1 else widths[i - 1]
                    arrays[f"W{i}"] = rng.standard_normal((widths[i], cols))
                name = f"chain-N{n_layers}-at{junction + 1}-{'plus' if delta > 0 else 'minus'}"
                p = write_npz(d / f"{name}.npz", {**arrays, "X": X, "Y": Y})
                expect = (
                    f"W{junction + 1} has {bad} columns but W{junction} has "
                    f"{widths[junction]} rows",
                )
                cases.append(Case(name, p, expect))
    # transposed layer (a common mistake: saving (in, out))
    p = write_npz(d / "chain-transposed-W1.npz", {**base.model(), "W1": base.weights["W1"].T})
    cases.append(Case(p.stem, p, ("W2 has 3 columns but W1 has 4 rows",)))
    p = write_npz(
        d / "chain-reversed.npz",
        {
            "W1": base.weights["W3"],
            "W2": base.weights["W2"],
            "W3": base.weights["W1"],
            "X": base.X,
            "Y": base.Y,
        },
    )
    cases.append(Case(p.stem, p, ("W2 has 3 columns but W1 has 2 rows",)))
    return cases


# ------------------------------------------------------------------------------- keys


def _keys(d: Path, base: Base) -> list[Case]:
    cases: list[Case] = []
    model = base.model()
    for key in (
        "w1",
        "W",
        "Wx",
        "weights",
        "W1.5",
        "bias1",
        "x",
        "y",
        "sxx",
        "W1_",
        "layer1",
        "",
        "W-1",
        "W 4",
        "META_note",
        "W\u0664",
        "Xtrain",
    ):
        arrays = {**model, key: np.ones((2, 2))}
        tag = key.encode("unicode_escape").decode().replace(" ", "_").replace("\\", "u") or "empty"
        p = write_npz(d / f"key-unknown-{tag}.npz", arrays)
        cases.append(Case(p.stem, p, (f"unknown array(s) {key!r}", "allowed: W1..WN")))
    p = write_npz(d / "key-W0.npz", {"W0": base.weights["W1"], **model})
    cases.append(Case(p.stem, p, ("array W0: layer indices start at 1",)))
    p = write_npz(d / "key-no-weights.npz", {"X": base.X, "Y": base.Y})
    cases.append(Case(p.stem, p, ("no weights",)))
    for keep, missing, total in (
        (("W1", "W3"), "W2", 3),
        (("W2", "W3"), "W1", 3),
        (("W1", "W2", "W4"), "W3", 4),
        (("W1", "W3", "W10"), "W2", 10),
    ):
        arrays = {k: base.weights.get(k, np.ones((2, 2))) for k in keep}
        p = write_npz(d / f"key-gap-{'-'.join(keep)}.npz", {**arrays, "X": base.X, "Y": base.Y})
        cases.append(Case(p.stem, p, (f"{missing} is missing", f"of W1..W{total} missing")))
    for first, second in (
        ("W1", "W01"),
        ("W2", "W02"),
        ("W3", "W003"),
        ("W1", "W0001"),
        ("W01", "W001"),
    ):
        index = int(first[1:])
        arrays = {**model, first: base.weights[f"W{index}"], second: base.weights[f"W{index}"]}
        p = write_npz(d / f"key-dup-{first}-{second}.npz", arrays)
        cases.append(Case(p.stem, p, (f"both name layer {index}",)))
    for member in ("W1", "X"):
        members = [(f"{k}.npy", v) for k, v in model.items()] + [(f"{member}.npy", model[member])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # zipfile warns on duplicate names
            p = write_zip(d / f"key-dup-member-{member}.npz", members)
        cases.append(Case(p.stem, p, (f"more than one member named {member}.npy",)))
    return cases


# ------------------------------------------------------------------------------- data


def _data(d: Path, base: Base) -> list[Case]:
    cases: list[Case] = []
    W = base.weights
    X, Y = base.X, base.Y

    def add(
        name: str, arrays: Mapping[str, np.ndarray], *expect: str, layout: str | None = None
    ) -> None:
        p = write_npz(d / f"{name}.npz", arrays)
        cases.append(Case(name, p, expect, layout=layout))

    add("data-none", W, "no data: found none of X, Y or Sxx, Syx, syy, m", "pass --data")
    add("data-meta-only", {**W, "meta_note": np.array("no data here")}, "no data")
    add("data-X-only", {**W, "X": X}, "has X but no Y")
    add("data-Y-only", {**W, "Y": Y}, "has Y but no X")
    add(
        "data-both-kinds",
        {**W, "X": X, "Y": Y, **base.stats()},
        "holds both raw data (X, Y) and statistics (Sxx, Syx, syy, m)",
    )
    add("data-X-and-m", {**W, "X": X, "Y": Y, "m": np.array(12)}, "holds both raw data")
    add(
        "data-X-wrong-width",
        {**W, "X": np.ones((5, 12)), "Y": Y},
        "X has shape (5, 12) but W1 takes dx = 4",
    )
    add(
        "data-X-wrong-width-rows",
        {**W, "X": np.ones((12, 5)), "Y": Y.T},
        "X has shape (12, 5) but W1 takes dx = 4",
    )
    add(
        "data-Y-wrong-width",
        {**W, "X": X, "Y": np.ones((3, 12))},
        "Y has shape (3, 12) but the last layer gives dy = 2",
    )
    add("data-samples-differ", {**W, "X": X, "Y": Y[:, :11]}, "X has 12 samples but Y has 11")
    add("data-samples-differ-rows", {**W, "X": X.T, "Y": Y.T[:10]}, "X has 12 samples but Y has 10")
    add(
        "data-mixed-layouts",
        {**W, "X": X, "Y": Y.T},
        "fits only layout columns",
        "fits only layout rows",
    )
    add(
        "data-layout-says-rows",
        {**W, "X": X, "Y": Y},
        "X has shape (4, 12)",
        "expected (m, 4) in layout rows",
        layout="rows",
    )
    add(
        "data-layout-says-columns",
        {**W, "X": X.T, "Y": Y.T},
        "X has shape (12, 4)",
        "expected (4, m) in layout columns",
        layout="columns",
    )
    add(
        "data-layout-invalid",
        {**W, "X": X, "Y": Y},
        "layout 'sideways' is not one of",
        layout="sideways",
    )
    rng = np.random.default_rng(SEED + 2)
    square = {"W1": rng.standard_normal((3, 3)), "W2": rng.standard_normal((3, 3))}
    add(
        "data-ambiguous-square",
        {**square, "X": rng.standard_normal((3, 3)), "Y": rng.standard_normal((3, 3))},
        "cannot tell the data layout",
        "pass --layout columns|rows",
    )
    scalar = {"W1": np.ones((2, 1)), "W2": np.ones((2, 2))}
    add(
        "data-ambiguous-1d-x",
        {**scalar, "X": np.arange(2.0), "Y": rng.standard_normal((2, 2))},
        "cannot tell the data layout: X has shape (2,)",
        "--layout",
    )

    # a separate --data file: the message must name it, not the weights file
    model = write_npz(d / "data-sep-model.npz", W)
    for name, arrays, expect in [
        ("data-sep-empty-file", {"meta_x": np.array(1.0)}, ("no data",)),
        ("data-sep-X-wide", {"X": np.ones((6, 12)), "Y": Y}, ("X has shape (6, 12)",)),
        ("data-sep-Y-nan", {"X": X, "Y": np.where(Y > 1.5, np.nan, Y)}, ("Y has", "NaN")),
        ("data-sep-unknown-key", {"X": X, "Y": Y, "labels": Y}, ("unknown array(s) 'labels'",)),
        ("data-sep-samples", {"X": X[:, :5], "Y": Y}, ("X has 5 samples but Y has 12",)),
    ]:
        p = write_npz(d / f"{name}.npz", arrays)
        cases.append(Case(name, model, expect, data=p, blame=p))
    p = d / "data-sep-missing.npz"
    cases.append(Case(p.stem, model, ("no such file",), data=p, blame=p))
    p = d / "data-sep-truncated.npz"
    p.write_bytes(write_npz(d / "tmp.npz", {"X": X, "Y": Y}).read_bytes()[:700])
    (d / "tmp.npz").unlink()
    cases.append(Case(p.stem, model, ("corrupt or truncated",), data=p, blame=p))
    return cases


def _stats(d: Path, base: Base) -> list[Case]:
    cases: list[Case] = []
    model = write_npz(d / "stats-model.npz", base.weights)
    good = base.stats()
    S = good["Sxx"]
    scale = float(np.abs(S).max())

    def add(name: str, override: Mapping[str, np.ndarray | None], *expect: str) -> None:
        arrays = {k: v for k, v in {**good, **override}.items() if v is not None}
        p = write_npz(d / f"{name}.npz", arrays)
        cases.append(Case(name, model, expect, data=p, blame=p))

    for i, j, rel in ((0, 1, 0.5), (0, 3, 1e-3), (2, 3, 1e-6)):
        a = S.copy()
        a[i, j] += rel * scale
        add(f"stats-asym-{i}{j}", {"Sxx": a}, "Sxx is not symmetric", f"|Sxx[{i},{j}] - ")
    add("stats-asym-triangular", {"Sxx": np.triu(S)}, "Sxx is not symmetric")
    for k, neg in enumerate((-1.0, -1e-2, -1e-5)):
        w, U = np.linalg.eigh(S)
        w[0] = neg * w[-1]
        bad = (U * w) @ U.T
        add(
            f"stats-indefinite-{k}",
            {"Sxx": 0.5 * (bad + bad.T)},
            "Sxx is indefinite",
            f"is {neg:.3g} of the largest",
        )
    add(
        "stats-negative-diagonal",
        {"Sxx": -np.eye(4)},
        "Sxx is indefinite",
        "smallest eigenvalue -1",
    )
    add("stats-minus-gram", {"Sxx": -S}, "Sxx is indefinite")
    add("stats-syy-negative", {"syy": np.array(-1.0)}, "syy is -1; expected >= 0")
    add("stats-syy-slightly-negative", {"syy": np.array(-1e-3)}, "syy is -0.001")
    add("stats-syy-scaled-down", {"syy": np.array(1e-3 * float(good["syy"]))}, "syy = ",
        "smaller than the part of Y that X explains")
    add("stats-Syx-scaled-up", {"Syx": 1e3 * good["Syx"]}, "smaller than the part of Y that X explains")
    # Huge but finite statistics are data at another scale (certified after exact rescaling);
    # statistics that overflowed are refused.
    add("stats-Sxx-overflowed", {"Sxx": np.full_like(good["Sxx"], np.inf)}, "Sxx", "non-finite")
    add("stats-syy-overflowed", {"syy": np.array(np.inf)}, "syy", "finite")
    add("stats-syy-vector", {"syy": np.array([1.0, 2.0])}, "syy has shape (2,)")
    add("stats-syy-matrix", {"syy": np.ones((1, 1))}, "syy has shape (1, 1)")
    add("stats-m-zero", {"m": np.array(0)}, "m is 0; expected a positive integer")
    add("stats-m-negative", {"m": np.array(-5)}, "m is -5")
    add("stats-m-fraction", {"m": np.array(2.5)}, "m is 2.5 (dtype float64)")
    add("stats-m-float-zero", {"m": np.array(0.0)}, "m is 0")
    add("stats-m-vector", {"m": np.array([12, 12])}, "m has shape (2,)")
    add("stats-m-empty", {"m": np.array([], dtype=np.int64)}, "m has shape (0,)")
    add("stats-Sxx-small", {"Sxx": S[:3, :3]}, "Sxx has shape (3, 3) but W1 takes dx = 4")
    add("stats-Sxx-big", {"Sxx": np.eye(5)}, "Sxx has shape (5, 5)", "expected (4, 4)")
    add("stats-Sxx-rect", {"Sxx": np.ones((4, 3))}, "Sxx has shape (4, 3)")
    add("stats-Syx-transposed", {"Syx": good["Syx"].T}, "Syx has shape (4, 2)", "expected (2, 4)")
    add("stats-Syx-wrong-dy", {"Syx": np.ones((3, 4))}, "Syx has shape (3, 4)")
    add("stats-Syx-wrong-dx", {"Syx": np.ones((2, 5))}, "Syx has shape (2, 5)")
    for key in ("Sxx", "Syx", "syy", "m"):
        add(f"stats-missing-{key}", {key: None}, "statistics file is missing", key)
    add("stats-missing-two", {"syy": None, "m": None}, "statistics file is missing syy, m")
    add("stats-with-X", {"X": base.X}, "holds both raw data (X) and statistics")
    add(
        "stats-meta-eps-negative",
        {"meta_eps": np.array(-1.0)},
        "meta_eps has shape ()",
    )
    add("stats-meta-eps-big", {"meta_eps": np.array(2.0)}, "meta_eps", "expected a 0-d float")
    add(
        "stats-meta-eps-string", {"meta_eps": np.array("1e-16")}, "meta_eps has shape (), dtype <U5"
    )
    add("stats-meta-eps-vector", {"meta_eps": np.array([1e-16, 1e-7])}, "meta_eps has shape (2,)")
    add("stats-meta-eps-int", {"meta_eps": np.array(0)}, "meta_eps", "dtype int64")
    return cases


GENERATORS: list[Generator] = [
    _file_level,
    _truncated,
    _flipped,
    _dtypes,
    _non_finite,
    _shapes,
    _chains,
    _keys,
    _data,
    _stats,
]
"""Every generator of bad cases; append new kinds (e.g. YAML manifests) here."""


def generate(directory: Path) -> list[Case]:
    """Write every malformed case into ``directory`` (created if needed) and return them."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = make_base()
    cases = [case for gen in GENERATORS for case in gen(directory, base)]
    names = [c.name for c in cases]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise RuntimeError(f"duplicate case names: {dupes}")
    return cases


def controls(directory: Path) -> list[Case]:
    """Valid inputs the bad cases are derived from (``expect`` is empty: they must load)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    base = make_base()
    model = write_npz(directory / "ok-model.npz", base.model())
    weights = write_npz(directory / "ok-weights.npz", base.weights)
    stats = write_npz(directory / "ok-stats.npz", base.stats())
    data = write_npz(directory / "ok-data.npz", {"X": base.X, "Y": base.Y})
    rows = write_npz(directory / "ok-rows.npz", {**base.weights, "X": base.X.T, "Y": base.Y.T})
    deflated = write_npz(directory / "ok-deflated.npz", base.model(), compress=True)
    rng = np.random.default_rng(SEED + 2)
    square = write_npz(
        directory / "ok-square.npz",
        {
            "W1": rng.standard_normal((3, 3)),
            "W2": rng.standard_normal((3, 3)),
            "X": rng.standard_normal((3, 3)),
            "Y": rng.standard_normal((3, 3)),
        },
    )
    return [
        Case("ok-model", model, ()),
        Case("ok-stats", weights, (), data=stats),
        Case("ok-data", weights, (), data=data),
        Case("ok-rows", rows, ()),
        Case("ok-deflated", deflated, ()),
        Case("ok-square-columns", square, (), layout="columns"),
        Case("ok-square-rows", square, (), layout="rows"),
    ]


if __name__ == "__main__":
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "malformed-corpus")
    for case in generate(out):
        print(f"{case.name}\t{case.blamed.name}\t{' | '.join(case.expect)}")
