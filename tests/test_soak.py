"""Soak (slow, 30 minutes): looped replay on 4 cameras; memory plateaus, file descriptors and
threads stay constant. Writes soak.{json,png} to a temporary folder: the committed
benchmarks/results/soak/ comes from ``python -m benchmarks.soak`` run on purpose, never from a
test."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import main


@pytest.mark.slow
def test_30_minutes_of_4_looped_cameras_memory_plateaus(tmp_path: Path) -> None:
    output = tmp_path / "soak"
    assert main(["--minutes", "30", "--cameras", "4", "--output", str(output)]) == 0
    assert (output / "soak.json").is_file() and (output / "soak.png").is_file()
