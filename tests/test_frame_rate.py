"""One fallback frame rate for videos and cameras that give none."""

from __future__ import annotations

import math

import pytest

from pipeline.frame_rate import DEFAULT_FRAME_RATE, frame_rate_or_default


@pytest.mark.parametrize("unknown", [None, 0.0, -1.0, math.nan, math.inf])
def test_unknown_rates_fall_back(unknown: float | None) -> None:
    assert frame_rate_or_default(unknown) == DEFAULT_FRAME_RATE == 25.0


def test_a_known_rate_is_kept() -> None:
    assert frame_rate_or_default(7.5) == 7.5
