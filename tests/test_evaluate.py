"""Encoder evaluation on mined tracklets: protocols, metrics through a known encoder, output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from reid_models.evaluate import (
    RESULTS_END,
    RESULTS_START,
    NamedEncoder,
    cross_camera_protocols,
    evaluate_index,
    later_in_time_protocol,
    main,
    markdown_table,
    write_results,
)
from reid_models.mined_index import read_index
from tests.mined_fixture import write_mined_fixture


class MeanColourEncoder(nn.Module):
    """Embeds a clip as its mean RGB of the body (below the head band), L2-normalised: a
    perfect encoder for the colour-coded fixture."""

    embedding_dim = 3

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        body = clips[..., clips.shape[-2] // 4 :, :]
        return F.normalize(body.mean(dim=(1, 3, 4)) - 0.5, dim=1)


class ConstantEncoder(nn.Module):
    """Ignores its input: every clip gets the same embedding (chance level)."""

    embedding_dim = 3

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.ones(clips.shape[0], 3), dim=1)


@pytest.fixture(scope="module")
def index_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mined_fixture(tmp_path_factory.mktemp("mined"), persons=5, frames=24)


def test_protocols_use_the_right_tracklets(index_path: Path) -> None:
    index = read_index(index_path)
    held_out = cross_camera_protocols(index, held_out_only=True)
    assert [p.name.split(": ")[1] for p in held_out] == ["camera 0 -> 1", "camera 1 -> 0"]
    assert all(len(p.query) == 5 and len(p.gallery) == 5 for p in held_out)
    assert {t.camera for t in held_out[0].query} == {0}
    whole = cross_camera_protocols(index, held_out_only=False)
    assert len(whole[0].query) == 10  # train and test segments
    later = later_in_time_protocol(index)
    assert len(later.query) == len(later.gallery) == 10  # every camera track
    for query, gallery in zip(later.query, later.gallery, strict=True):
        assert query.identity == gallery.identity and query.camera != gallery.camera
        assert set(query.image_paths).isdisjoint(gallery.image_paths)


def test_metrics_separate_a_perfect_encoder_from_a_blind_one(index_path: Path) -> None:
    index = read_index(index_path)
    encoders = [
        NamedEncoder("colour", MeanColourEncoder(), 4),
        NamedEncoder("constant", ConstantEncoder(), 4),
    ]
    results = evaluate_index(index, encoders)
    rows = {(row["encoder"], row["protocol"]): row for row in results["rows"]}
    for protocol in ("cross-camera, held out", "cross-camera, all footage"):
        assert rows[("colour", protocol)]["rank1"] == 100.0
        assert rows[("colour", protocol)]["mAP"] == 100.0
        assert rows[("constant", protocol)]["mAP"] < 60.0
    # Pseudo-labels: the same person's track in the other camera is another identity, so
    # even a perfect person encoder ranks the true track first or second (10 tracks, 5 people).
    later = "later-in-time, pseudo-labels"
    assert rows[("colour", later)]["rank5"] == 100.0
    assert rows[("colour", later)]["mAP"] >= 70.0
    assert rows[("constant", later)]["mAP"] < 40.0
    table = markdown_table(results)
    assert "### cross-camera, held out" in table and "**100.0**" in table


def test_results_replace_only_the_marked_block(tmp_path: Path) -> None:
    path = tmp_path / "RESULTS.md"
    path.write_text(f"# Title\n\nintro\n\n{RESULTS_START}\nold\n{RESULTS_END}\n\n## Why\ntext\n")
    write_results(path, "| new table |\n", "test machine", ["--index", "x"])
    text = path.read_text()
    assert "old" not in text and "| new table |" in text
    assert text.startswith("# Title") and text.endswith("## Why\ntext\n")
    assert "python -m reid_models.evaluate --index x" in text


def test_cli_refuses_missing_encoder_file(tmp_path: Path, index_path: Path) -> None:
    code = main(["--index", str(index_path), "--encoder", str(tmp_path / "missing.pt")])
    assert code == 2
    assert np.isfinite(code)
