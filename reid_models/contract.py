"""The one input contract of every crosscam ReID encoder.

Every encoder (TP, RRU+STIM, DRSTA) takes a float32 tensor of shape ``(batch, T, 3, H, W)``:
RGB channel order, values in ``[0, 1]``, ``H x W = 256 x 128`` by default. Mean/std
normalisation happens inside the model (:class:`ImageNormalization` is its first layer), so
torch, ONNX Runtime and TensorRT all see the same input and nobody normalises twice.
The output is float32 ``(batch, embedding_dim)`` with unit L2 norm per row.

:class:`CropsInput` puts the host's crop conversion (``reid_models.clip_input.crops_to_clips``)
in front of an encoder as graph operations, for exported graphs that take uint8 BGR crops.
"""

from __future__ import annotations

import torch
from torch import nn

INPUT_HEIGHT = 256
INPUT_WIDTH = 128
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNormalization(nn.Module):
    """Subtract the mean and divide by the standard deviation, per RGB channel.

    Input ``(..., 3, H, W)`` RGB in ``[0, 1]``; output the same shape, normalised.
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


class CropsInput(nn.Module):
    """An encoder that takes camera crops: uint8 BGR ``(batch, T, H, W, 3)`` in ``[0, 255]``.

    What ``reid_models.clip_input.crops_to_clips`` does on the host, as graph operations in
    front of ``encoder`` (whose first layer, :class:`ImageNormalization`, does mean/std): cast
    to float32 first (TensorRT takes uint8 only as a network input converted by a cast),
    ``(T, H, W, 3) -> (T, 3, H, W)``, BGR -> RGB, ``/ 255``. Exported by
    ``engines.export_onnx`` with ``input_format="uint8_bgr"``; the output is ``encoder``'s.
    """

    bgr_to_rgb: torch.Tensor

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.register_buffer("bgr_to_rgb", torch.tensor([2, 1, 0]), persistent=False)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        channels_first = crops.float().permute(0, 1, 4, 2, 3)
        clips = channels_first.index_select(2, self.bgr_to_rgb) / 255.0
        return self.encoder(clips)
