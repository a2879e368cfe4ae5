"""RRU+STIM: gate math, shapes, learnability on synthetic identities, real OSNet shapes.

The tiny backbone and the synthetic clip generator defined here are shared with
``tests/test_drsta.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from reid_models.backbones import FrameBackbone, build_backbone
from reid_models.evaluate_metrics import evaluate_embeddings
from reid_models.factory import build_encoder, describe_encoder, load_encoder, save_encoder
from reid_models.losses import RruStimLoss
from reid_models.rru_stim import (
    RefiningRecurrentUnit,
    RruStimEncoder,
    RruStimTrainingOutput,
    SpatialTemporalIntegration,
    blend_state,
    build_rru_stim_encoder,
)

SYNTHETIC_SIZE = (64, 32)
SYNTHETIC_IDENTITIES = 8


class TinyFrameBackbone(FrameBackbone):
    """Three stride-2 3x3 convolutions: ``(N, 3, 64, 32)`` -> ``(N, channels, 8, 4)``."""

    def __init__(self, channels: int = 32) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_channels = 3
        for out_channels in (16, channels, channels):
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            in_channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels
        self.pooled_dim = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


@dataclass(frozen=True)
class SyntheticWorld:
    """Identities defined by an upper and a lower body colour (float RGB in [0, 1])."""

    upper_colours: np.ndarray
    lower_colours: np.ndarray

    @classmethod
    def create(cls, identity_count: int, generator: np.random.Generator) -> SyntheticWorld:
        return cls(
            generator.uniform(0, 1, (identity_count, 3)),
            generator.uniform(0, 1, (identity_count, 3)),
        )

    def clips(
        self,
        identities: Sequence[int],
        generator: np.random.Generator,
        tracklets_per_camera: int = 1,
        clip_length: int = 4,
    ) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Clips float32 ``(B, T, 3, 64, 32)`` in [0, 1], identities int64 ``(B,)``, cameras.

        Each tracklet gets a random background colour and illumination gain (the nuisance);
        each frame a random shift of the person box and pixel noise.
        """
        height, width = SYNTHETIC_SIZE
        clips, labels, cameras = [], [], []
        for identity in identities:
            for camera in (0, 1):
                for _ in range(tracklets_per_camera):
                    background = generator.uniform(0, 1, 3)
                    gain = generator.uniform(0.6, 1.2)
                    frames = np.empty((clip_length, height, width, 3))
                    for frame in frames:
                        frame[:] = background
                        top = 8 + int(generator.integers(-3, 4))
                        left = 8 + int(generator.integers(-3, 4))
                        frame[top : top + 24, left : left + 16] = (
                            self.upper_colours[identity] * gain
                        )
                        frame[top + 24 : top + 48, left : left + 16] = (
                            self.lower_colours[identity] * gain
                        )
                    frames += generator.normal(0, 0.1, frames.shape)
                    clips.append(frames)
                    labels.append(identity)
                    cameras.append(camera)
        array = np.clip(np.stack(clips), 0, 1).astype(np.float32).transpose(0, 1, 4, 2, 3)
        return (
            torch.from_numpy(np.ascontiguousarray(array)),
            torch.tensor(labels),
            np.array(cameras),
        )


@dataclass(frozen=True)
class LearningRecord:
    first_losses: float
    last_losses: float
    map_before: float
    map_after: float


def retrieval_map(
    model: nn.Module, clips: torch.Tensor, labels: torch.Tensor, cameras: np.ndarray
) -> float:
    """mAP of camera-0 queries against camera-1 gallery, embeddings from eval mode."""
    was_training = model.training
    model.eval()
    with torch.no_grad():
        embeddings = model(clips).numpy()
    model.train(was_training)
    query, gallery = cameras == 0, cameras == 1
    identities = labels.numpy()
    metrics = evaluate_embeddings(
        embeddings[query],
        identities[query],
        cameras[query],
        embeddings[gallery],
        identities[gallery],
        cameras[gallery],
    )
    return metrics.mean_average_precision


def train_on_synthetic(
    model: nn.Module,
    loss_of_batch: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
    steps: int = 100,
    seed: int = 0,
) -> LearningRecord:
    """Adam on fresh PK batches (4 identities x 2 tracklets) of the synthetic world."""
    generator = np.random.default_rng(seed)
    world = SyntheticWorld.create(SYNTHETIC_IDENTITIES, generator)
    evaluation = world.clips(range(SYNTHETIC_IDENTITIES), generator, tracklets_per_camera=2)
    map_before = retrieval_map(model, *evaluation)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    losses = []
    for _ in range(steps):
        identities = generator.choice(SYNTHETIC_IDENTITIES, size=4, replace=False).tolist()
        clips, labels, _ = world.clips(identities, generator)
        loss = loss_of_batch(model, clips, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return LearningRecord(
        first_losses=float(np.mean(losses[:5])),
        last_losses=float(np.mean(losses[-5:])),
        map_before=map_before,
        map_after=retrieval_map(model, *evaluation),
    )


def tiny_rru_stim(identity_count: int | None = SYNTHETIC_IDENTITIES) -> RruStimEncoder:
    return RruStimEncoder(
        TinyFrameBackbone(),
        identity_count=identity_count,
        input_size=SYNTHETIC_SIZE,
        transition_channels=64,
        spatial_hidden=32,
        stim_hidden_channels=64,
        stim_channels=64,
        classifier_hidden=64,
        classifier_dropout=0.0,
    )


def test_blend_state_gate_extremes() -> None:
    state, frame = torch.randn(2, 3, 4, 2), torch.randn(2, 3, 4, 2)
    assert torch.equal(blend_state(state, frame, torch.zeros_like(state)), state)
    assert torch.equal(blend_state(state, frame, torch.ones_like(state)), frame)
    torch.testing.assert_close(
        blend_state(state, frame, torch.full_like(state, 0.25)), 0.75 * state + 0.25 * frame
    )


@pytest.mark.parametrize("gate_value", [0.0, 1.0, 0.5])
def test_rru_recurrence_with_constant_gate(
    monkeypatch: pytest.MonkeyPatch, gate_value: float
) -> None:
    unit = RefiningRecurrentUnit(channels=3, map_size=(4, 2), transition_channels=8)
    frames = torch.randn(2, 5, 3, 4, 2)
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def constant_gate(
        frame: torch.Tensor, previous_state: torch.Tensor, previous_frame: torch.Tensor
    ) -> torch.Tensor:
        calls.append((frame, previous_state, previous_frame))
        return torch.full_like(frame, gate_value)

    monkeypatch.setattr(unit, "update_gate", constant_gate)
    states = unit(frames)
    expected = [frames[:, 0]]
    for step in range(1, 5):
        expected.append((1 - gate_value) * expected[-1] + gate_value * frames[:, step])
    torch.testing.assert_close(states, torch.stack(expected, dim=1))
    # The gate sees X_t, S_{t-1} and X_{t-1}; S_1 = X_1 needs no gate.
    assert len(calls) == 4
    torch.testing.assert_close(calls[1][0], frames[:, 2])
    torch.testing.assert_close(calls[1][1], expected[1])
    torch.testing.assert_close(calls[1][2], frames[:, 1])


def test_rru_gate_range_and_first_state() -> None:
    unit = RefiningRecurrentUnit(channels=6, map_size=(4, 2), transition_channels=8)
    frames = torch.randn(3, 4, 6, 4, 2)
    gate = unit.update_gate(frames[:, 1], frames[:, 0], frames[:, 0])
    assert gate.shape == (3, 6, 4, 2)
    assert torch.all((gate > 0) & (gate < 1))
    states = unit(frames)
    assert states.shape == frames.shape
    torch.testing.assert_close(states[:, 0], frames[:, 0])
    # A single frame passes through unchanged.
    torch.testing.assert_close(unit(frames[:, :1]), frames[:, :1])


def test_rru_refuses_other_map_size() -> None:
    unit = RefiningRecurrentUnit(channels=2, map_size=(4, 2))
    with pytest.raises(ValueError, match="built for"):
        unit(torch.randn(1, 2, 2, 8, 4))


@pytest.mark.parametrize("clip_length", [1, 3])
def test_stim_output_shape(clip_length: int) -> None:
    stim = SpatialTemporalIntegration(in_channels=5, hidden_channels=6, out_channels=7)
    features = stim(torch.randn(2, clip_length, 5, 4, 2))
    assert features.shape == (2, 7)
    assert torch.all(features >= 0)


def test_part_features_are_row_stripes() -> None:
    model = tiny_rru_stim()
    refined = torch.randn(2, 3, 32, 8, 4)
    assert model.part_count == 8
    rows = model.part_features(refined)
    torch.testing.assert_close(rows, refined.mean(dim=(1, 4)).transpose(1, 2))
    model.part_count = 2
    halves = model.part_features(refined)
    torch.testing.assert_close(halves[:, 0], refined[:, :, :, :4].mean(dim=(1, 3, 4)))


def test_train_and_eval_outputs_with_variable_clip_length() -> None:
    model = tiny_rru_stim()
    clips = torch.rand(2, 4, 3, *SYNTHETIC_SIZE)
    model.train()
    outputs = model(clips)
    assert isinstance(outputs, RruStimTrainingOutput)
    assert outputs.logits is not None and outputs.logits.shape == (2, SYNTHETIC_IDENTITIES)
    # The embedding has the backbone's pooled size (TP plus the projected STIM feature).
    assert outputs.video_features.shape == (2, 32)
    assert outputs.part_features.shape == (2, 8, 32)
    model.eval()
    for clip_length in (1, 4, 7):
        embeddings = model(torch.rand(3, clip_length, 3, *SYNTHETIC_SIZE))
        assert isinstance(embeddings, torch.Tensor)
        assert embeddings.shape == (3, 32) and embeddings.dtype == torch.float32
        torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(3))


def test_remove_classifier() -> None:
    model = tiny_rru_stim()
    head = model.remove_classifier()
    assert head is not None and model.classifier is None
    assert not any(name.startswith("classifier.") for name in model.state_dict())
    outputs = model.training_outputs(torch.rand(2, 2, 3, *SYNTHETIC_SIZE))
    assert outputs.logits is None


def rru_stim_batch_loss(
    model: nn.Module, clips: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    outputs = model(clips)
    assert isinstance(outputs, RruStimTrainingOutput)
    loss = RruStimLoss()(outputs.logits, outputs.video_features, outputs.part_features, labels)
    return loss.total


def test_rru_stim_learns_synthetic_identities() -> None:
    torch.manual_seed(0)
    record = train_on_synthetic(tiny_rru_stim(), rru_stim_batch_loss, steps=100, seed=0)
    # Chance mAP here (8 identities, 2 gallery tracklets each of 16) is about 0.2.
    assert record.last_losses < 0.6 * record.first_losses, record
    assert record.map_after > 0.75, record
    assert record.map_after > record.map_before + 0.25, record


@pytest.fixture(scope="module")
def osnet_rru_stim() -> RruStimEncoder:
    torch.manual_seed(0)
    return RruStimEncoder(build_backbone("osnet_x0_25"), identity_count=5)


@pytest.mark.parametrize("clip_length", [8, 4])
def test_osnet_shapes(osnet_rru_stim: RruStimEncoder, clip_length: int) -> None:
    model = osnet_rru_stim
    assert model.map_size == (16, 8)
    clips = torch.rand(2, clip_length, 3, 256, 128)
    with torch.no_grad():
        model.train()
        outputs = model(clips)
        model.eval()
        embeddings = model(clips)
    assert isinstance(outputs, RruStimTrainingOutput)
    assert outputs.logits is not None and outputs.logits.shape == (2, 5)
    assert outputs.video_features.shape == (2, 512)
    assert outputs.part_features.shape == (2, 16, 128)
    assert isinstance(embeddings, torch.Tensor) and embeddings.shape == (2, 512)
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(2))


def test_factory_builds_and_round_trips(tmp_path: Path) -> None:
    encoder = build_encoder("rru_stim")
    assert isinstance(encoder, RruStimEncoder) and not encoder.training
    assert encoder.classifier is None
    path = tmp_path / "rru_stim.pt"
    save_encoder(path, encoder, describe_encoder(encoder, "rru_stim", "osnet_x0_25"))
    loaded, metadata = load_encoder(path)
    assert metadata.embedding_dim == 512
    clips = torch.rand(1, 2, 3, 256, 128)
    with torch.no_grad():
        torch.testing.assert_close(loaded(clips), encoder(clips))


def test_builder_loads_plain_state_dict_without_classifier(tmp_path: Path) -> None:
    trained = RruStimEncoder(build_backbone("osnet_x0_25", pretrained=False), identity_count=3)
    path = tmp_path / "trained.pth"
    torch.save({"state_dict": trained.state_dict()}, path)
    rebuilt = build_rru_stim_encoder(
        weights=path, backbone="osnet_x0_25", backbone_weights=None, pretrained=False
    )
    torch.testing.assert_close(
        rebuilt.stim.layers[0].weight, trained.stim.layers[0].weight, rtol=0, atol=0
    )


def test_onnx_export_keeps_batch_dynamic(tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model = tiny_rru_stim(identity_count=None).eval()
    path = tmp_path / "rru_stim.onnx"
    torch.onnx.export(
        model,
        (torch.rand(2, 4, 3, *SYNTHETIC_SIZE),),
        str(path),
        input_names=["clips"],
        output_names=["embeddings"],
        dynamic_axes={"clips": {0: "batch"}, "embeddings": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        clips = torch.rand(batch, 4, 3, *SYNTHETIC_SIZE)
        with torch.no_grad():
            expected = model(clips)
        (exported,) = session.run(None, {"clips": clips.numpy()})
        np.testing.assert_allclose(exported, expected.numpy(), atol=1e-5)
