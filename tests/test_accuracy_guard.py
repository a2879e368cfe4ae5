"""The accuracy regression guard (benchmarks/accuracy_guard.py): identities on a real terrace1
segment must not get worse than the committed baseline."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.accuracy_guard import BASELINE, TOLERANCE, measure, regressions


def test_identities_on_the_guard_segment_are_no_worse_than_the_baseline(tmp_path: Path):
    baseline = json.loads(BASELINE.read_text())
    measured = measure(tmp_path)
    assert regressions(measured, baseline) == []


def test_the_guard_fails_on_a_worse_run():
    baseline = {"metrics": {"mtmc_idf1": 0.8, "cross_f1": 0.8}}
    worse = {"mtmc_idf1": 0.8 - TOLERANCE["mtmc_idf1"] - 0.01, "cross_f1": 0.8}
    assert [line.split(":")[0] for line in regressions(worse, baseline)] == ["mtmc_idf1"]
    assert regressions({"mtmc_idf1": 0.79, "cross_f1": 0.9}, baseline) == []
