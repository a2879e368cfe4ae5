"""Both seed encoders start as temporal pooling: same embeddings, same retrieval mAP."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_models.backbones import build_backbone
from reid_models.drsta import DrstaEncoder
from reid_models.evaluate_metrics import evaluate_retrieval, pairwise_distances
from reid_models.rru_stim import RruStimEncoder
from reid_models.temporal_pooling import TemporalPoolingEncoder


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    """Float32 ``(6, 4, 3, 256, 128)``: three 'identities' of two clips, frames of a clip
    close to each other (noise around a per-identity image)."""
    generator = torch.Generator().manual_seed(0)
    bases = torch.rand(3, 1, 3, 256, 128, generator=generator)
    noise = 0.1 * torch.rand(6, 4, 3, 256, 128, generator=generator)
    return (bases.repeat_interleave(2, dim=0) + noise).clamp(0, 1)


def untrained(name: str) -> RruStimEncoder | DrstaEncoder:
    torch.manual_seed(0)
    backbone = build_backbone("osnet_x0_25")
    encoder = (
        RruStimEncoder(backbone, identity_count=3) if name == "rru_stim" else DrstaEncoder(backbone)
    )
    return encoder.eval()


def mean_average_precision(embeddings: np.ndarray) -> float:
    identities = np.repeat(np.arange(3), 2)
    cameras = np.tile(np.arange(2), 3)
    metrics = evaluate_retrieval(
        pairwise_distances(embeddings, embeddings, metric="cosine"),
        identities,
        identities,
        cameras,
        1 - cameras,
    )
    return metrics.mean_average_precision


@pytest.mark.parametrize("name", ["rru_stim", "drsta"])
def test_untrained_encoder_is_temporal_pooling(name: str, clips: torch.Tensor) -> None:
    encoder = untrained(name)
    temporal_pooling = TemporalPoolingEncoder(build_backbone("osnet_x0_25")).eval()
    with torch.no_grad():
        embeddings = encoder(clips)
        expected = temporal_pooling(clips)
    assert isinstance(embeddings, torch.Tensor)
    assert embeddings.shape == expected.shape == (6, 512)
    torch.testing.assert_close(embeddings, expected, rtol=0, atol=1e-5)
    assert mean_average_precision(embeddings.numpy()) == pytest.approx(
        mean_average_precision(expected.numpy()), abs=1e-9
    )


@pytest.mark.parametrize("name", ["rru_stim", "drsta"])
def test_training_features_are_temporal_pooling_too(name: str, clips: torch.Tensor) -> None:
    """The features the losses see at step 0 are TP's (before normalisation), in train mode
    with the backbone kept in eval mode as the frozen-backbone trainer does."""
    encoder = untrained(name)
    encoder.train()
    encoder.backbone.eval()
    temporal_pooling = TemporalPoolingEncoder(build_backbone("osnet_x0_25")).eval()
    with torch.no_grad():
        features = encoder.training_outputs(clips[:2]).video_features
        expected = temporal_pooling.frame_features(clips[:2]).mean(dim=1)
    torch.testing.assert_close(features, expected, rtol=0, atol=1e-4)


def test_attention_starts_uniform() -> None:
    encoder = untrained("drsta")
    assert isinstance(encoder, DrstaEncoder)
    encoder.train()
    with torch.no_grad():
        outputs = encoder.training_outputs(torch.rand(2, 3, 3, 256, 128))
    torch.testing.assert_close(
        outputs.attention_maps, torch.full_like(outputs.attention_maps, 1 / (16 * 8))
    )
    torch.testing.assert_close(
        outputs.temporal_weights, torch.full_like(outputs.temporal_weights, 1 / 3)
    )


def test_residual_branches_get_gradients_after_one_step() -> None:
    """Zero-initialised last layers still learn: the projection gets a gradient at once."""
    encoder = untrained("rru_stim")
    assert isinstance(encoder, RruStimEncoder)
    encoder.train()
    encoder.backbone.eval()
    outputs = encoder.training_outputs(torch.rand(2, 3, 3, 256, 128))
    outputs.video_features.pow(2).sum().backward()
    assert encoder.stim_projection.weight.grad is not None
    assert float(encoder.stim_projection.weight.grad.abs().sum()) > 0
    assert encoder.refinement.gain.grad is not None
