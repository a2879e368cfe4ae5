"""DRSTA: attention normalisation, feature arithmetic, learnability, real OSNet shapes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reid_models.backbones import build_backbone
from reid_models.drsta import (
    DrstaEncoder,
    DrstaTrainingOutput,
    MultipleSpatialAttention,
    PartTemporalAttention,
    build_drsta_encoder,
)
from reid_models.factory import build_encoder, describe_encoder, load_encoder, save_encoder
from reid_models.losses import DrstaLoss, hellinger_diversity_regularizer
from tests.test_rru_stim import (
    SYNTHETIC_IDENTITIES,
    SYNTHETIC_SIZE,
    TinyFrameBackbone,
    train_on_synthetic,
)


def tiny_drsta(part_count: int = 3) -> DrstaEncoder:
    return DrstaEncoder(TinyFrameBackbone(), part_count=part_count, attention_hidden_channels=32)


def test_spatial_attention_models_are_distributions_and_independent() -> None:
    attention = MultipleSpatialAttention(channels=6, part_count=3, hidden_channels=4)
    maps = torch.randn(2, 6, 4, 2)
    weights = attention(maps)
    assert weights.shape == (2, 3, 8)
    torch.testing.assert_close(weights.sum(dim=2), torch.ones(2, 3))
    # Changing the second layer of model 1 changes only map 1.
    with torch.no_grad():
        attention.score.weight[1].add_(1.0 * torch.randn_like(attention.score.weight[1]))
    changed = attention(maps)
    torch.testing.assert_close(changed[:, [0, 2]], weights[:, [0, 2]])
    assert not torch.allclose(changed[:, 1], weights[:, 1])


def test_temporal_attention_normalises_over_frames() -> None:
    temporal = PartTemporalAttention(part_count=3, feature_dim=5)
    weights = temporal(torch.randn(2, 4, 3, 5))
    assert weights.shape == (2, 4, 3)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(2, 3))
    torch.testing.assert_close(temporal(torch.randn(2, 1, 3, 5)), torch.ones(2, 1, 3))


def test_video_feature_is_attention_weighted_sum() -> None:
    model = tiny_drsta().eval()
    clips = torch.rand(2, 3, 3, *SYNTHETIC_SIZE)
    with torch.no_grad():
        outputs = model.training_outputs(clips)
        maps = model.backbone(model.normalization(clips.flatten(0, 1)))
    positions = maps.flatten(2).unflatten(0, (2, 3))  # (B, N, C, L)
    part_features = torch.einsum("bnkl,bncl->bnkc", outputs.attention_maps, positions)
    expected = torch.einsum("bnk,bnkc->bkc", outputs.temporal_weights, part_features)
    torch.testing.assert_close(outputs.part_features, expected)
    # The video feature is TP of the pooled maps plus the projected concatenated parts.
    pooled = model.backbone.pool(maps).unflatten(0, (2, 3)).mean(dim=1)
    with torch.no_grad():
        projected = model.part_projection(expected.flatten(1))
    torch.testing.assert_close(outputs.video_features, pooled + projected)
    assert outputs.attention_maps.shape == (2, 3, 3, 32)
    torch.testing.assert_close(outputs.temporal_weights.sum(dim=1), torch.ones(2, 3))


def test_train_and_eval_outputs_with_variable_frame_count() -> None:
    model = tiny_drsta(part_count=4)
    assert model.embedding_dim == 32
    model.train()
    outputs = model(torch.rand(2, 4, 3, *SYNTHETIC_SIZE))
    assert isinstance(outputs, DrstaTrainingOutput)
    assert outputs.video_features.shape == (2, 32)
    assert outputs.part_features.shape == (2, 4, 32)
    model.eval()
    for frame_count in (1, 4, 6):
        embeddings = model(torch.rand(3, frame_count, 3, *SYNTHETIC_SIZE))
        assert isinstance(embeddings, torch.Tensor) and embeddings.shape == (3, 32)
        torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))


def test_diversity_regularizer_pushes_maps_apart() -> None:
    torch.manual_seed(0)
    model = tiny_drsta()
    clips = torch.rand(2, 2, 3, *SYNTHETIC_SIZE)
    # The maps start uniform and identical, a stationary point of the regularizer (the
    # identity loss moves them first); start from slightly different maps instead.
    with torch.no_grad():
        model.spatial_attention.score.weight.normal_(std=0.1)
    optimizer = torch.optim.Adam(model.spatial_attention.parameters(), lr=1e-2)
    values = []
    for _ in range(20):
        outputs = model.training_outputs(clips)
        regularizer = hellinger_diversity_regularizer(outputs.attention_maps)
        optimizer.zero_grad()
        regularizer.backward()
        optimizer.step()
        values.append(regularizer.item())
    assert values[-1] < 0.5 * values[0]


def test_drsta_learns_synthetic_identities() -> None:
    torch.manual_seed(0)
    model = tiny_drsta()
    loss_function = DrstaLoss(model.embedding_dim, SYNTHETIC_IDENTITIES)

    def batch_loss(module: nn.Module, clips: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        outputs = module(clips)
        assert isinstance(outputs, DrstaTrainingOutput)
        return loss_function(outputs.video_features, outputs.attention_maps, labels).total

    record = train_on_synthetic(model, batch_loss, steps=150, seed=0)
    # Chance mAP here (8 identities, 2 gallery tracklets each of 16) is about 0.2.
    assert record.last_losses < 0.6 * record.first_losses, record
    assert record.map_after > 0.65, record
    assert record.map_after > record.map_before + 0.25, record


@pytest.mark.parametrize("frame_count", [8, 4])
def test_osnet_shapes(frame_count: int) -> None:
    torch.manual_seed(0)
    model = DrstaEncoder(build_backbone("osnet_x0_25"))
    clips = torch.rand(2, frame_count, 3, 256, 128)
    with torch.no_grad():
        model.train()
        outputs = model(clips)
        model.eval()
        embeddings = model(clips)
    assert isinstance(outputs, DrstaTrainingOutput)
    assert outputs.video_features.shape == (2, 512)
    assert outputs.part_features.shape == (2, 6, 128)
    assert outputs.attention_maps.shape == (2, frame_count, 6, 16 * 8)
    assert outputs.temporal_weights.shape == (2, frame_count, 6)
    assert isinstance(embeddings, torch.Tensor) and embeddings.shape == (2, 512)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(2))


def test_factory_builds_and_round_trips(tmp_path: Path) -> None:
    encoder = build_encoder("drsta")
    assert isinstance(encoder, DrstaEncoder) and not encoder.training
    path = tmp_path / "drsta.pt"
    save_encoder(path, encoder, describe_encoder(encoder, "drsta", "osnet_x0_25"))
    loaded, metadata = load_encoder(path)
    assert metadata.embedding_dim == 512
    clips = torch.rand(1, 2, 3, 256, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clips), encoder(clips))
    plain = tmp_path / "plain.pth"
    torch.save(encoder.state_dict(), plain)
    rebuilt = build_drsta_encoder(
        weights=plain, backbone="osnet_x0_25", backbone_weights=None, pretrained=False
    )
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(clips), encoder(clips))


def test_onnx_export_keeps_batch_and_frames_dynamic(tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model = tiny_drsta().eval()
    path = tmp_path / "drsta.onnx"
    torch.onnx.export(
        model,
        (torch.rand(2, 4, 3, *SYNTHETIC_SIZE),),
        str(path),
        input_names=["clips"],
        output_names=["embeddings"],
        dynamic_axes={"clips": {0: "batch", 1: "frames"}, "embeddings": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch, frame_count in ((1, 4), (3, 6)):
        clips = torch.rand(batch, frame_count, 3, *SYNTHETIC_SIZE)
        with torch.no_grad():
            expected = model(clips)
        (exported,) = session.run(None, {"clips": clips.numpy()})
        np.testing.assert_allclose(exported, expected.numpy(), atol=1e-5)
