"""The paper-scale configs run end to end, one epoch, on a MARS-layout dataset built from mined
crops (the published folder layout and ``info/`` files, as ``load_mars`` reads them)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import savemat

from reid_models.datasets import load_mars
from reid_models.factory import load_encoder
from reid_models.mined_index import read_index
from reid_models.train import Trainer
from reid_models.train_config import load_train_config
from tests.mined_fixture import write_mined_fixture

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def write_mars_layout(index_path: Path, root: Path) -> Path:
    """Copy a mined index's person-labelled crops into MARS's layout under ``root``.

    ``train`` tracklets go to ``bbox_train``, ``test`` ones to ``bbox_test``; person ``pN`` is
    MARS identity ``N`` (folder ``000N``), camera ``c`` is MARS camera ``c + 1``; the first test
    tracklet of every identity is a query.
    """
    index = read_index(index_path)
    for folder, split, names_file, info_file, key in (
        ("bbox_train", "train", "train_name.txt", "tracks_train_info.mat", "track_train_info"),
        ("bbox_test", "test", "test_name.txt", "tracks_test_info.mat", "track_test_info"),
    ):
        names: list[str] = []
        rows: list[list[int]] = []
        queries: list[int] = []
        seen: set[int] = set()
        chosen = [t for t in index.tracklets if t.split == split and t.person is not None]
        for number, tracklet in enumerate(chosen, start=1):
            identity = int(str(tracklet.person).removeprefix("p"))
            camera = tracklet.camera + 1
            start = len(names) + 1
            for frame, source in enumerate(index.image_paths(tracklet), start=1):
                name = f"{identity:04d}C{camera}T{number:04d}F{frame:03d}.jpg"
                target = root / folder / f"{identity:04d}" / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                names.append(name)
            rows.append([start, len(names), identity, camera])
            if identity not in seen:
                seen.add(identity)
                queries.append(len(rows))
        (root / "info").mkdir(parents=True, exist_ok=True)
        (root / "info" / names_file).write_text("\n".join(names) + "\n")
        savemat(str(root / "info" / info_file), {key: np.array(rows, dtype=np.float64)})
        if split == "test":
            savemat(str(root / "info" / "query_IDX.mat"), {"query_IDX": np.array([queries])})
    return root


@pytest.fixture(scope="module")
def mars_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mined")
    index = write_mined_fixture(folder, persons=4, frames=8)
    return write_mars_layout(index, folder / "MARS")


def test_mars_layout_from_mined_crops(mars_root: Path) -> None:
    split = load_mars(mars_root)
    assert len(split.train) == 8 and split.train_identity_count == 4
    assert len(split.query) == 4 and len(split.gallery) == 4
    assert {tracklet.camera for tracklet in split.train} == {0, 1}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rru_stim_mars", "drsta_mars"])
def test_paper_scale_config_runs_one_epoch(mars_root: Path, tmp_path: Path, name: str) -> None:
    """The shipped config as it is (backbone, end-to-end training, losses, augmentation),
    with the batch, clip length and epochs made small enough for a CPU."""
    config = load_train_config(
        REPOSITORY_ROOT / "configs" / "train" / f"{name}.yaml",
        {
            "data.path": str(mars_root),
            "epochs": 1,
            "clip_length": 2,
            "identities_per_batch": 2,
            "tracklets_per_identity": 2,
            "output": str(tmp_path / "run"),
            "export": str(tmp_path / "encoder.pt"),
        },
    )
    assert not config.freeze_backbone
    trainer = Trainer(config)
    exported = trainer.run()
    assert len(trainer.history) == 1 and trainer.history[0]["batches"] >= 1
    encoder, metadata = load_encoder(exported)
    assert metadata.architecture == config.model and metadata.backbone == config.backbone
    with torch.no_grad():
        embeddings = encoder(torch.rand(1, 2, 3, 256, 128))
    assert embeddings.shape == (1, metadata.embedding_dim)
