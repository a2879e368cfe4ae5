"""The ablation runs every step on a tiny mined set, epoch 0 scores TP, and it writes its
table, curves and plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.mined_fixture import write_mined_fixture
from training.ablation import ABLATION_END, ABLATION_START, STEPS, main


def _config(folder: Path, index: Path, model: str) -> Path:
    config = {
        "model": model,
        "backbone": "osnet_x0_25",
        "freeze_backbone": True,
        "train_last_stage": True,
        "data": {"kind": "mined", "path": str(index), "geometric_positives": True},
        "clip_length": 4,
        "identities_per_batch": 3,
        "tracklets_per_identity": 2,
        "epochs": 1,
        "augmentation": {"cached_variants": 1},
        "output": f"runs/{model}",
        "export": f"{model}.pt",
    }
    path = folder / f"{model}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_ablation_writes_table_curves_and_plot(tmp_path: Path) -> None:
    index = write_mined_fixture(tmp_path / "mined", persons=4, frames=8)
    out = tmp_path / "RESULTS.md"
    out.write_text("# results\n\nkept text\n")
    arguments = ["--out", str(out)]
    for model in ("rru_stim", "drsta"):
        arguments += ["--config", str(_config(tmp_path, index, model))]
    assert main(arguments) == 0
    text = out.read_text()
    assert "kept text" in text and ABLATION_START in text and ABLATION_END in text
    for step in STEPS:
        assert f"| {step.name} |" in text
    curves = json.loads((tmp_path / "learning_curves.json").read_text())
    tp = curves["temporal_pooling"]["mAP"]
    assert len(curves["runs"]) == 2 * len(STEPS)
    for run in curves["runs"]:
        assert [point["epoch"] for point in run["curve"]] == [0, 1]
        # Untrained, every encoder is TP.
        assert run["curve"][0]["mAP"] == pytest.approx(tp, abs=0.05)
    assert (tmp_path / "learning_curves.png").stat().st_size > 0
    assert (tmp_path / "rru_stim.pt").is_file() and (tmp_path / "drsta.pt").is_file()
    assert (tmp_path / "ablation" / "rru_stim" / "step0" / "encoder.pt").is_file()
