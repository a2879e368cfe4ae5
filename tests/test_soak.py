"""Soak (slow, 30 minutes): looped replay on 4 cameras; memory plateaus, file descriptors and
threads stay constant. Writes benchmarks/results/soak/soak.{json,png}."""

from __future__ import annotations

import pytest

from benchmarks.soak import main
from tests.conftest import REPOSITORY_ROOT


@pytest.mark.slow
def test_30_minutes_of_4_looped_cameras_memory_plateaus():
    output = REPOSITORY_ROOT / "benchmarks" / "results" / "soak"
    assert main(["--minutes", "30", "--cameras", "4", "--output", str(output)]) == 0
