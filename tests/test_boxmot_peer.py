"""The BoxMOT rows of the peer benchmark: BoT-SORT, DeepOCSORT and StrongSORT in BoxMOT's own
venv, run as a subprocess with the bundled OSNet weights as a local file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from benchmarks.boxmot_peer import TRACKERS
from benchmarks.peers import BOXMOT_PYTHON, BOXMOT_TRACKERS, boxmot_systems, main
from benchmarks.pipeline import set_replay
from benchmarks.stream_baseline import class_thresholds, mtmc_line
from pipeline.config import DetectorConfig, ReplayMode, load_config
from tests.conftest import REPOSITORY_ROOT

TERRACE1 = REPOSITORY_ROOT / "benchmarks" / "configs" / "terrace1.yaml"
GROUND_TRUTH = REPOSITORY_ROOT / "benchmarks" / "ground_truth" / "terrace1.json"


def test_the_boxmot_rows_are_its_three_reid_trackers() -> None:
    systems = boxmot_systems(Path("/venv/bin/python"))
    assert list(systems) == [
        "BoxMOT BoT-SORT + naive matcher",
        "BoxMOT DeepOCSORT + naive matcher",
        "BoxMOT StrongSORT + naive matcher",
    ]
    assert set(BOXMOT_TRACKERS) == set(TRACKERS)


def test_class_thresholds_follow_the_detector_config() -> None:
    thresholds = class_thresholds(DetectorConfig(confidence=0.4, class_confidence={1: 0.6}))
    assert thresholds.tolist() == pytest.approx([0.4, 0.6])
    assert mtmc_line(1, 7, 30, (10.2, 20.0, 40.0, 100.6)) == "1 7 30 10 20 30 81 -1 -1"


def test_missing_boxmot_venv_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--streams", str(TERRACE1), "--gt", str(GROUND_TRUTH), "--boxmot"]
    arguments += ["--boxmot-python", str(tmp_path / "missing"), "--out", str(tmp_path)]
    assert main(arguments) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "make boxmot-venv" in error


@pytest.mark.slow
@pytest.mark.skipif(not BOXMOT_PYTHON.is_file(), reason="no BoxMOT venv (make boxmot-venv)")
def test_boxmot_tracks_a_second_of_terrace1_offline(tmp_path: Path) -> None:
    config = load_config(TERRACE1)
    for camera in config.cameras:
        camera.start_seconds = 40
    set_replay(config, ReplayMode.FAST, 1.0)
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json")))
    weights = tmp_path / "osnet_x0_25_msmt17.pt"
    weights.symlink_to(REPOSITORY_ROOT / "assets" / "weights" / "osnet_x0_25_msmt17.pth")
    command = [str(BOXMOT_PYTHON), "-m", "benchmarks.boxmot_peer", "--config"]
    command += [str(tmp_path / "run.yaml"), "--tracker", "deepocsort", "--reid-weights"]
    command += [str(weights), "--mtmc", str(tmp_path / "out.txt")]
    command += ["--report", str(tmp_path / "report.json")]
    environment = {**os.environ, "YOLO_OFFLINE": "1"}
    finished = subprocess.run(
        command, cwd=REPOSITORY_ROOT, env=environment, capture_output=True, text=True
    )
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert "skipping download" in finished.stderr + finished.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["frames"] == 20 and report["identities"] >= 1
    assert (tmp_path / "out.txt").read_text().strip()
