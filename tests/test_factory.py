"""Encoder factory: the registry, TP defaults, and encoder files with metadata."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from reid_models.backbones import OSNET_X0_25_MARKET1501_WEIGHTS, OSNET_X0_25_MSMT17_WEIGHTS
from reid_models.contract import IMAGENET_MEAN, IMAGENET_STD
from reid_models.factory import (
    EncoderMetadata,
    build_encoder,
    describe_encoder,
    encoder_names,
    is_encoder_checkpoint,
    load_encoder,
    read_encoder_metadata,
    save_encoder,
)
from reid_models.temporal_pooling import TemporalPoolingEncoder


def _clips() -> torch.Tensor:
    """Random float32 clips ``(2, 2, 3, 128, 64)`` in ``[0, 1]`` (small frames keep it fast)."""
    return torch.rand(2, 2, 3, 128, 64, generator=torch.Generator().manual_seed(0))


def _conv1_weight(encoder: torch.nn.Module) -> torch.Tensor:
    return encoder.state_dict()["backbone.network.conv1.conv.weight"]


def _file_conv1_weight(path: Path) -> torch.Tensor:
    return torch.load(path, map_location="cpu", weights_only=True)["conv1.conv.weight"]


def test_tp_defaults_to_osnet_msmt17() -> None:
    encoder = build_encoder("tp", None)
    assert isinstance(encoder, TemporalPoolingEncoder)
    assert not encoder.training
    assert torch.equal(_conv1_weight(encoder), _file_conv1_weight(OSNET_X0_25_MSMT17_WEIGHTS))


def test_tp_accepts_plain_backbone_weights() -> None:
    encoder = build_encoder("tp", OSNET_X0_25_MARKET1501_WEIGHTS)
    assert torch.equal(_conv1_weight(encoder), _file_conv1_weight(OSNET_X0_25_MARKET1501_WEIGHTS))
    with pytest.raises(ValueError, match="not both"):
        build_encoder(
            "tp", OSNET_X0_25_MARKET1501_WEIGHTS, backbone_weights=OSNET_X0_25_MSMT17_WEIGHTS
        )


def test_unknown_encoder_lists_known_names() -> None:
    assert "tp" in encoder_names()
    with pytest.raises(
        ValueError, match=r"unknown encoder 'no_such_encoder'; known encoders: .*tp"
    ):
        build_encoder("no_such_encoder", None)


def test_encoder_file_round_trip(tmp_path: Path) -> None:
    encoder = build_encoder("tp", OSNET_X0_25_MARKET1501_WEIGHTS)
    metadata = describe_encoder(
        encoder, "tp", "osnet_x0_25", clip_length=4, training_data="Market1501"
    )
    assert metadata.embedding_dim == 512
    assert metadata.mean == IMAGENET_MEAN and metadata.std == IMAGENET_STD
    assert metadata.git_commit is None or re.fullmatch(r"[0-9a-f]{40}", metadata.git_commit)
    path = tmp_path / "encoders" / "tp_market.pt"
    save_encoder(path, encoder, metadata)

    assert is_encoder_checkpoint(path)
    assert not is_encoder_checkpoint(OSNET_X0_25_MSMT17_WEIGHTS)
    assert read_encoder_metadata(path) == metadata
    loaded, loaded_metadata = load_encoder(path)
    assert loaded_metadata == metadata
    assert isinstance(loaded, TemporalPoolingEncoder)
    assert not loaded.training
    clips = _clips()
    with torch.no_grad():
        expected = encoder(clips)
        assert torch.allclose(loaded(clips), expected, atol=1e-6)
        # The file's weights win over the default (MSMT17) ones.
        assert not torch.allclose(build_encoder("tp", None)(clips), expected, atol=1e-3)
        assert torch.allclose(build_encoder("tp", path)(clips), expected, atol=1e-6)


def test_metadata_mean_and_std_are_restored(tmp_path: Path) -> None:
    encoder = build_encoder("tp", None)
    metadata = describe_encoder(encoder, "tp", "osnet_x0_25").model_copy(
        update={"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    )
    path = tmp_path / "tp.pt"
    save_encoder(path, encoder, metadata)
    loaded, _ = load_encoder(path)
    assert isinstance(loaded, TemporalPoolingEncoder)
    assert torch.allclose(loaded.normalization.mean.flatten(), torch.full((3,), 0.5))
    assert torch.allclose(loaded.normalization.std.flatten(), torch.full((3,), 0.25))


def test_mismatches_are_refused(tmp_path: Path) -> None:
    encoder = build_encoder("tp", None)
    metadata = describe_encoder(encoder, "tp", "osnet_x0_25")
    with pytest.raises(ValueError, match="embedding_dim"):
        save_encoder(tmp_path / "bad.pt", encoder, metadata.model_copy(update={"embedding_dim": 7}))
    other = tmp_path / "other.pt"
    save_encoder(other, encoder, metadata.model_copy(update={"architecture": "other_model"}))
    with pytest.raises(ValueError, match="holds a 'other_model' encoder"):
        build_encoder("tp", other)
    with pytest.raises(ValueError, match="not an encoder file"):
        load_encoder(OSNET_X0_25_MSMT17_WEIGHTS)
    with pytest.raises(ValidationError):
        EncoderMetadata(architecture="tp", backbone="osnet_x0_25", embedding_dim=512, colour="bgr")
