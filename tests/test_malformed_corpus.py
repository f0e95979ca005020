"""The CI gate's promise (SPEC §6): every malformed input is one InputError line naming the file.

For each case of ``tests/malformed_corpus.py`` the loader must raise :class:`InputError` (never
another exception type, never a warning), with a one-line message that names the blamed file
(its basename) and contains every expected substring.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from malformed_corpus import Case, controls, generate

from dlcert.errors import InputError
from dlcert.io import Layout, load_problem


def _load_npz(case: Case) -> object:
    layout = (
        case.layout
        if case.layout is None or case.layout not in {"columns", "rows"}
        else (Layout(case.layout))
    )
    return load_problem(case.weights, case.data, layout)  # type: ignore[arg-type]


LOADERS: dict[str, Callable[[Case], object]] = {"npz": _load_npz}
"""How each kind of case is loaded. Register new kinds here (e.g. ``"yaml"``)."""


def _names() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        return [case.name for case in generate(Path(tmp))]


CASE_NAMES = _names()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Case]:
    return {case.name: case for case in generate(tmp_path_factory.mktemp("corpus"))}


def test_corpus_is_large_and_distinct(corpus: dict[str, Case]) -> None:
    assert len(corpus) >= 200
    assert len({c.name for c in corpus.values()}) == len(corpus)
    assert all(case.expect for case in corpus.values())
    kinds = {c.kind for c in corpus.values()}
    assert kinds <= set(LOADERS), f"no loader registered for {kinds - set(LOADERS)}"


def test_corpus_is_deterministic(tmp_path: Path) -> None:
    a, b = generate(tmp_path / "a"), generate(tmp_path / "b")
    assert [(c.name, c.expect, c.layout, c.kind) for c in a] == [
        (c.name, c.expect, c.layout, c.kind) for c in b
    ]
    for ca, cb in zip(a, b, strict=True):
        for fa, fb in zip(ca.files, cb.files, strict=True):
            assert fa.name == fb.name
            if fa.is_file():
                assert fa.read_bytes() == fb.read_bytes(), ca.name


@pytest.mark.parametrize("case", [c.name for c in controls(Path(tempfile.mkdtemp()))])
def test_controls_load(case: str, tmp_path: Path) -> None:
    """The valid files the corpus is derived from load cleanly (the defects are the cause)."""
    by_name = {c.name: c for c in controls(tmp_path)}
    LOADERS[by_name[case].kind](by_name[case])


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("name", CASE_NAMES)
def test_malformed_input_is_one_line_input_error(name: str, corpus: dict[str, Case]) -> None:
    case = corpus[name]
    try:
        LOADERS[case.kind](case)
    except InputError as exc:
        message = str(exc)
    except Exception as exc:  # the gate's promise: never another exception type
        pytest.fail(f"{name}: {type(exc).__name__} instead of InputError: {exc}")
    else:
        pytest.fail(f"{name}: loaded without error; expected {case.expect}")
    assert message, name
    assert "\n" not in message and "\r" not in message, message
    assert case.blamed.name in message, message
    for part in case.expect:
        assert part in message, f"{part!r} not in {message!r}"
