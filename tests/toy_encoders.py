"""Tiny clip encoders that follow ``reid_models.contract``, for fast engine tests.

``ToyEncoder`` pools each 256x128 frame by 16 (to 16x8) before one small convolution, so an export
takes well under a second. With ``recurrent=True`` it folds frames with a Python loop over
``T`` (like RRU+STIM), which a traced ONNX graph unrolls for the traced ``T``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from reid_models.contract import ImageNormalization
from reid_models.factory import EncoderMetadata, describe_encoder

TOY_EMBEDDING_DIM = 16


class ToyEncoder(nn.Module):
    """float32 ``(batch, T, 3, H, W)`` RGB in ``[0, 1]`` -> float32 ``(batch, 16)``, unit norm."""

    def __init__(self, recurrent: bool = False, seed: int = 0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.normalization = ImageNormalization()
        self.convolution = nn.Conv2d(3, TOY_EMBEDDING_DIM, kernel_size=3, padding=1)
        with torch.no_grad():
            self.convolution.weight.copy_(
                torch.randn(self.convolution.weight.shape, generator=generator)
            )
            assert self.convolution.bias is not None
            self.convolution.bias.copy_(torch.randn(TOY_EMBEDDING_DIM, generator=generator))
        self.embedding_dim = TOY_EMBEDDING_DIM
        self.recurrent = recurrent

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        batch, clip_length = clips.shape[0], clips.shape[1]
        frames = F.avg_pool2d(self.normalization(clips.flatten(0, 1)), 16)
        features = F.relu(self.convolution(frames)).mean(dim=(2, 3))
        features = features.unflatten(0, (batch, clip_length))
        if self.recurrent:
            state = features[:, 0]
            for index in range(1, clip_length):
                state = 0.5 * state + features[:, index] * (index + 1)
            pooled = state
        else:
            pooled = features.mean(dim=1)
        return F.normalize(pooled, dim=1)


def build_toy_encoder(
    *, weights: Path | None, backbone: str, backbone_weights: Path | None, pretrained: bool
) -> ToyEncoder:
    """Builder with the ``reid_models.factory`` signature (name ``"toy"``)."""
    return ToyEncoder().eval()


def build_recurrent_toy_encoder(
    *, weights: Path | None, backbone: str, backbone_weights: Path | None, pretrained: bool
) -> ToyEncoder:
    """Builder with the ``reid_models.factory`` signature (name ``"toy_recurrent"``)."""
    return ToyEncoder(recurrent=True).eval()


def toy_metadata(
    encoder: nn.Module, architecture: str = "toy", clip_length: int = 4
) -> EncoderMetadata:
    return describe_encoder(encoder, architecture, "none", clip_length=clip_length)
