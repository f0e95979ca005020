"""Shared fixtures: random data, statistics, and paths to the sample cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcert.statistics import Statistics

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


@pytest.fixture
def small_problem(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, Statistics]:
    X = rng.standard_normal((4, 30))
    Y = rng.standard_normal((3, 4)) @ X + 0.3 * rng.standard_normal((3, 30))
    return X, Y, Statistics.from_data(X, Y)


@pytest.fixture
def samples_dir() -> Path:
    return SAMPLES
