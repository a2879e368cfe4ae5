"""Temporal pooling encoder: contract shapes, unit norm, and invariances of the mean over T."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reid_models.backbones import build_backbone
from reid_models.contract import IMAGENET_MEAN, IMAGENET_STD
from reid_models.temporal_pooling import TemporalPoolingEncoder


@pytest.fixture(scope="module")
def encoder() -> TemporalPoolingEncoder:
    return TemporalPoolingEncoder(build_backbone("osnet_x0_25", None)).eval()


def _clips(
    batch: int, clip_length: int, seed: int = 0, size: tuple[int, int] = (128, 64)
) -> torch.Tensor:
    """Random clips, float32 ``(batch, T, 3, H, W)`` in ``[0, 1]``; small frames keep it fast."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, clip_length, 3, *size, generator=generator)


@pytest.mark.parametrize("clip_length", [1, 3])
def test_output_is_unit_norm_for_any_clip_length(
    encoder: TemporalPoolingEncoder, clip_length: int
) -> None:
    with torch.no_grad():
        embeddings = encoder(_clips(2, clip_length, size=(256, 128)))
    assert embeddings.shape == (2, 512)
    assert embeddings.dtype == torch.float32
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(2), atol=1e-5)
    assert encoder.embedding_dim == 512


def test_repeated_frames_give_the_single_frame_embedding(encoder: TemporalPoolingEncoder) -> None:
    frames = _clips(2, 1)
    with torch.no_grad():
        single = encoder(frames)
        repeated = encoder(frames.expand(-1, 5, -1, -1, -1))
    assert torch.allclose(single, repeated, atol=1e-5)


def test_frame_order_and_batch_composition_do_not_matter(encoder: TemporalPoolingEncoder) -> None:
    clips = _clips(2, 4, seed=1)
    with torch.no_grad():
        batched = encoder(clips)
        reversed_order = encoder(clips.flip(1))
        one_by_one = torch.cat([encoder(clips[:1]), encoder(clips[1:])])
    assert torch.allclose(batched, reversed_order, atol=1e-5)
    assert torch.allclose(batched, one_by_one, atol=1e-5)
    assert not torch.allclose(batched[0], batched[1], atol=1e-3)


def test_normalisation_happens_inside_the_encoder(encoder: TemporalPoolingEncoder) -> None:
    clips = _clips(1, 2, seed=2)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    with torch.no_grad():
        frames = (clips[0] - mean) / std
        frame_features = encoder.backbone.pool(encoder.backbone(frames))
        expected = F.normalize(frame_features.mean(dim=0, keepdim=True), dim=1)
        assert torch.allclose(encoder(clips), expected, atol=1e-5)


def test_other_backbones_set_the_embedding_size() -> None:
    encoder = TemporalPoolingEncoder(build_backbone("mobilenet_v2", None)).eval()
    with torch.no_grad():
        embeddings = encoder(torch.rand(1, 2, 3, 128, 64))
    assert encoder.embedding_dim == 1280
    assert embeddings.shape == (1, 1280)
