"""Training: config validation, a two-epoch run, resume equal to an uninterrupted run, export."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from reid_models.datasets import Tracklet
from reid_models.factory import load_encoder
from reid_models.train import Trainer, main, training_tracklets
from reid_models.train_config import TrainConfigError, load_train_config
from tests.mined_fixture import write_mined_fixture

REPOSITORY_ROOT = Path(__file__).resolve().parents[1]


def _write_config(folder: Path, index: Path, **changes: object) -> Path:
    config = {
        "model": "rru_stim",
        "backbone": "osnet_x0_25",
        "freeze_backbone": True,
        "data": {"kind": "mined", "path": str(index)},
        "clip_length": 4,
        "identities_per_batch": 3,
        "tracklets_per_identity": 2,
        "epochs": 2,
        "seed": 3,
        "output": "run",
        "export": "encoder.pt",
        **changes,
    }
    path = folder / "train.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def mined_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mined_fixture(tmp_path_factory.mktemp("mined"), persons=6, frames=12)


@pytest.mark.parametrize("name", ["rru_stim_mined", "drsta_mined", "rru_stim_mars", "drsta_mars"])
def test_shipped_configs_validate(name: str) -> None:
    config = load_train_config(REPOSITORY_ROOT / "configs/train" / f"{name}.yaml")
    assert config.model in ("rru_stim", "drsta")
    assert config.export.suffix == ".pt"


def test_config_errors_name_the_key(tmp_path: Path, mined_index: Path) -> None:
    with pytest.raises(TrainConfigError, match="not found"):
        load_train_config(tmp_path / "missing.yaml")
    with pytest.raises(TrainConfigError, match="epochs"):
        load_train_config(_write_config(tmp_path, mined_index, epochs=0))
    with pytest.raises(TrainConfigError, match="learning_rat"):
        load_train_config(_write_config(tmp_path, mined_index, learning_rat=0.1))
    with pytest.raises(TrainConfigError, match="model"):
        load_train_config(_write_config(tmp_path, mined_index, model="lstm"))
    with pytest.raises(TrainConfigError, match="freeze_backbone"):
        load_train_config(_write_config(tmp_path, mined_index, model="tp"))


def test_train_cli_error_is_one_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = _write_config(tmp_path, tmp_path / "no-index.json")
    assert main(["--config", str(config)]) == 2
    assert "python -m training.mine" in caplog.text


def _state(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=False)["model"]


@pytest.mark.parametrize("model", ["rru_stim", "drsta"])
def test_resumed_training_equals_uninterrupted(
    tmp_path: Path, mined_index: Path, model: str
) -> None:
    straight_folder = tmp_path / "straight"
    straight_folder.mkdir()
    straight = load_train_config(_write_config(straight_folder, mined_index, model=model))
    exported = Trainer(straight).run()

    resumed_folder = tmp_path / "resumed"
    resumed_folder.mkdir()
    config_path = _write_config(resumed_folder, mined_index, model=model)
    Trainer(load_train_config(config_path, {"epochs": 1})).run()
    assert (resumed_folder / "run/checkpoints/epoch_001.pt").is_file()
    Trainer(load_train_config(config_path)).run(resume=True)

    final, reference = (
        _state(resumed_folder / "run/last.pt"),
        _state(straight_folder / "run/last.pt"),
    )
    assert final.keys() == reference.keys()
    for name in reference:
        assert torch.equal(final[name], reference[name]), name
    checkpoint = torch.load(
        resumed_folder / "run/checkpoints/epoch_002.pt", map_location="cpu", weights_only=False
    )
    assert checkpoint["epoch"] == 2
    assert checkpoint["metadata"]["architecture"] == model
    assert checkpoint["metadata"]["clip_length"] == 4
    log_lines = (straight_folder / "run/train_log.jsonl").read_text().splitlines()
    assert len(log_lines) == 2

    encoder, metadata = load_encoder(exported)
    assert metadata.architecture == model and metadata.clip_length == 4
    assert metadata.git_commit is not None
    clips = torch.rand(2, 4, 3, 256, 128)
    with torch.no_grad():
        embeddings = encoder(clips)
    assert embeddings.shape == (2, metadata.embedding_dim)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(2), atol=1e-5)


def test_resume_without_checkpoint_is_refused(tmp_path: Path, mined_index: Path) -> None:
    config = load_train_config(_write_config(tmp_path, mined_index))
    with pytest.raises(TrainConfigError, match="nothing to resume"):
        Trainer(config).run(resume=True)


def test_training_lowers_the_loss(tmp_path: Path, mined_index: Path) -> None:
    config = load_train_config(_write_config(tmp_path, mined_index, epochs=6))
    trainer = Trainer(config)
    trainer.run()
    losses = [record["loss"]["total"] for record in trainer.history]
    assert losses[-1] < losses[0]


def test_geometric_positives_come_from_the_application_layer(tmp_path: Path, mined_index: Path):
    """reid_models cannot call the identity layer: a config asking for geometric positives
    needs the relabelling handed in (training.train does), and then uses it."""
    data = {"kind": "mined", "path": str(mined_index), "geometric_positives": True}
    config = load_train_config(_write_config(tmp_path, mined_index, data=data))
    with pytest.raises(TrainConfigError, match=r"training\.train"):
        training_tracklets(config)
    seen: list[int] = []

    def one_person_per_two_tracks(config, records, tracklets):  # type: ignore[no-untyped-def]
        seen.append(len(tracklets))
        return [Tracklet(t.image_paths, index // 2, t.camera) for index, t in enumerate(tracklets)]

    relabelled = training_tracklets(config, one_person_per_two_tracks)
    assert seen and len({tracklet.identity for tracklet in relabelled}) <= seen[0] // 2 + 1
