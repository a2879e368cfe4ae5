"""OSNet, the omni-scale person ReID network (Zhou et al., ICCV 2019), written from the paper.

The layout and parameter names follow the published torchreid checkpoints, so that
``osnet_x0_25_msmt17.pth`` and ``osnet_x0_25_market1501.pth`` load with ``strict=True``:

- ``conv1``: 7x7 stride-2 convolution, then a 3x3 stride-2 max pool (``1/4`` resolution).
- ``conv2``, ``conv3``: two omni-scale blocks each, then a transition (1x1 convolution and a 2x2
  average pool) that halves the resolution again.
- ``conv4``: two omni-scale blocks, no pooling; ``conv5``: one 1x1 convolution.
- ``fc``: global average pool, linear layer to ``feature_dim``, batch norm, ReLU.
- ``classifier``: linear layer to the training identities (unused at inference).

An omni-scale block reduces its input to ``out / 4`` channels, runs four streams of 1, 2, 3 and
4 stacked lite 3x3 convolutions (receptive fields 3, 5, 7 and 9), weighs every stream with one
shared channel gate (the unified aggregation gate), sums them, expands back to ``out`` channels
and adds a residual connection.

Every network here takes normalised RGB images (ImageNet mean/std, see
``reid_models.contract``) of shape ``(N, 3, H, W)``; for ``256 x 128`` inputs the last feature
map is ``(N, channels[3], 16, 8)``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from reid_models.state_dicts import read_state_dict

logger = logging.getLogger(__name__)

OSNET_X0_25_CHANNELS = (16, 64, 96, 128)
OSNET_FEATURE_DIM = 512
BLOCKS_PER_STAGE = 2
BOTTLENECK_REDUCTION = 4
GATE_REDUCTION = 16
STREAM_COUNT = 4


class ConvolutionBatchNorm(nn.Module):
    """Convolution without bias, batch norm, and an optional ReLU.

    Input float ``(N, in_channels, H, W)``; output ``(N, out_channels, H', W')``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int = 0,
        activate: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.activation: nn.Module = nn.ReLU(inplace=True) if activate else nn.Identity()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.activation(self.bn(self.conv(inputs)))


class LiteConvolution3x3(nn.Module):
    """Lite 3x3 layer: pointwise 1x1 convolution, depthwise 3x3 convolution, batch norm, ReLU.

    Input float ``(N, in_channels, H, W)``; output ``(N, out_channels, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.conv2 = nn.Conv2d(
            out_channels, out_channels, 3, padding=1, groups=out_channels, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.activation(self.bn(self.conv2(self.conv1(inputs))))


class UnifiedAggregationGate(nn.Module):
    """Channel gate shared by the four streams of an omni-scale block.

    Global average pool, 1x1 convolution down to ``channels / 16`` (at least 1), ReLU, 1x1
    convolution back to ``channels``, sigmoid; the input is scaled by the resulting weights.
    Input and output float ``(N, channels, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        hidden_channels = max(channels // GATE_REDUCTION, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, hidden_channels, 1, bias=True)
        self.activation = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(hidden_channels, channels, 1, bias=True)
        self.gate = nn.Sigmoid()

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        weights = self.gate(self.fc2(self.activation(self.fc1(self.pool(inputs)))))
        return inputs * weights


class OmniScaleBlock(nn.Module):
    """Residual bottleneck with four gated streams of growing receptive field.

    Input float ``(N, in_channels, H, W)``; output ``(N, out_channels, H, W)``, non-negative.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        middle_channels = out_channels // BOTTLENECK_REDUCTION
        self.conv1 = ConvolutionBatchNorm(in_channels, middle_channels)
        # Stream k stacks k lite 3x3 layers; the names match the published checkpoints.
        self.conv2a = LiteConvolution3x3(middle_channels, middle_channels)
        self.conv2b = _lite_stack(middle_channels, depth=2)
        self.conv2c = _lite_stack(middle_channels, depth=3)
        self.conv2d = _lite_stack(middle_channels, depth=4)
        self.gate = UnifiedAggregationGate(middle_channels)
        self.conv3 = ConvolutionBatchNorm(middle_channels, out_channels, activate=False)
        self.downsample: ConvolutionBatchNorm | None = None
        if in_channels != out_channels:
            self.downsample = ConvolutionBatchNorm(in_channels, out_channels, activate=False)
        self.activation = nn.ReLU(inplace=True)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        reduced = self.conv1(inputs)
        aggregated = (
            self.gate(self.conv2a(reduced))
            + self.gate(self.conv2b(reduced))
            + self.gate(self.conv2c(reduced))
            + self.gate(self.conv2d(reduced))
        )
        expanded = self.conv3(aggregated)
        identity = inputs if self.downsample is None else self.downsample(inputs)
        return self.activation(expanded + identity)


def _lite_stack(channels: int, depth: int) -> nn.Sequential:
    return nn.Sequential(*(LiteConvolution3x3(channels, channels) for _ in range(depth)))


def _stage(in_channels: int, out_channels: int, reduce_resolution: bool) -> nn.Sequential:
    """``BLOCKS_PER_STAGE`` omni-scale blocks, then optionally a 1x1 conv and a 2x2 average pool."""
    layers: list[nn.Module] = [OmniScaleBlock(in_channels, out_channels)]
    layers += [OmniScaleBlock(out_channels, out_channels) for _ in range(BLOCKS_PER_STAGE - 1)]
    if reduce_resolution:
        layers.append(
            nn.Sequential(
                ConvolutionBatchNorm(out_channels, out_channels),
                nn.AvgPool2d(2, stride=2),
            )
        )
    return nn.Sequential(*layers)


class OSNet(nn.Module):
    """OSNet with a ``feature_dim`` embedding head and an identity classifier.

    Args:
        channels: widths of ``conv1`` and of the three omni-scale stages; x0.25 is
            ``(16, 64, 96, 128)``, x1.0 is ``(64, 256, 384, 512)``.
        feature_dim: size of the pooled embedding (512 for the published models).
        num_classes: training identities of the classifier (1041 for MSMT17, 751 for
            Market1501); ``None`` builds no classifier (a pure feature extractor).

    ``forward`` returns the embedding in every mode (torchreid's evaluation feature); training
    code that needs identity logits calls :meth:`classify` on it.
    """

    def __init__(
        self,
        channels: tuple[int, int, int, int] = OSNET_X0_25_CHANNELS,
        feature_dim: int = OSNET_FEATURE_DIM,
        num_classes: int | None = 1000,
    ) -> None:
        super().__init__()
        self.channels = channels
        self.feature_dim = feature_dim
        self.num_classes = num_classes
        self.conv1 = ConvolutionBatchNorm(3, channels[0], kernel_size=7, stride=2, padding=3)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.conv2 = _stage(channels[0], channels[1], reduce_resolution=True)
        self.conv3 = _stage(channels[1], channels[2], reduce_resolution=True)
        self.conv4 = _stage(channels[2], channels[3], reduce_resolution=False)
        self.conv5 = ConvolutionBatchNorm(channels[3], channels[3])
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channels[3], feature_dim),
            nn.BatchNorm1d(feature_dim),
            nn.ReLU(inplace=True),
        )
        self.classifier = None if num_classes is None else nn.Linear(feature_dim, num_classes)
        self._initialise_weights()

    @property
    def out_channels(self) -> int:
        """Channels of the last feature map."""
        return self.channels[3]

    def feature_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Last convolutional feature map (after ``conv5``).

        Args:
            images: float ``(N, 3, H, W)``, RGB normalised with the ImageNet mean/std.

        Returns:
            float ``(N, channels[3], H / 16, W / 16)``, non-negative; ``(N, 128, 16, 8)`` for
            x0.25 and ``256 x 128`` input.
        """
        return self.conv5(self.trunk_maps(images))

    def trunk_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Feature map before the last stage ``conv5``: float ``(N, channels[3], H/16, W/16)``
        (the input of ``conv5``; ``feature_maps = conv5(trunk_maps)``)."""
        features = self.maxpool(self.conv1(images))
        return self.conv4(self.conv3(self.conv2(features)))

    def pool(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """Global average pool and the ``fc`` head.

        Args:
            feature_maps: float ``(N, channels[3], h, w)`` from :meth:`feature_maps`.

        Returns:
            float ``(N, feature_dim)``, non-negative (the head ends in a ReLU), not normalised.
        """
        return self.fc(self.global_avgpool(feature_maps).flatten(1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Embedding of normalised images ``(N, 3, H, W)`` -> float ``(N, feature_dim)``."""
        return self.pool(self.feature_maps(images))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        """Identity logits ``(N, num_classes)`` from embeddings ``(N, feature_dim)``."""
        if self.classifier is None:
            raise RuntimeError("this OSNet was built without a classifier (num_classes=None)")
        return self.classifier(features)

    def _initialise_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.01)
                nn.init.zeros_(module.bias)


def osnet_x0_25(num_classes: int | None = 1000) -> OSNet:
    """Randomly initialised OSNet x0.25: channels ``(16, 64, 96, 128)``, 512-d embedding."""
    return OSNet(OSNET_X0_25_CHANNELS, OSNET_FEATURE_DIM, num_classes)


def osnet_from_state_dict(
    state_dict: Mapping[str, torch.Tensor], include_classifier: bool = True
) -> OSNet:
    """Build the OSNet whose widths, embedding size and classes match ``state_dict``, load it.

    With ``include_classifier=False`` the ``classifier.*`` tensors are dropped and the network
    has no classifier (``num_classes`` is ``None``). Everything else is loaded with
    ``strict=True``; the model is returned in eval mode.
    """
    try:
        channels = (
            state_dict["conv1.conv.weight"].shape[0],
            state_dict["conv2.0.conv3.conv.weight"].shape[0],
            state_dict["conv3.0.conv3.conv.weight"].shape[0],
            state_dict["conv4.0.conv3.conv.weight"].shape[0],
        )
        num_classes, feature_dim = state_dict["classifier.weight"].shape
    except KeyError as error:
        raise ValueError(f"not an OSNet state dict: missing {error}") from error
    if not include_classifier:
        state_dict = {
            name: tensor
            for name, tensor in state_dict.items()
            if not name.startswith("classifier.")
        }
    network = OSNet(channels, int(feature_dim), int(num_classes) if include_classifier else None)
    network.load_state_dict(state_dict, strict=True)
    return network.eval()


def load_osnet(path: Path) -> OSNet:
    """Load a torchreid-layout OSNet checkpoint (e.g. ``osnet_x0_25_msmt17.pth``).

    ``num_classes`` comes from the classifier's shape and the widths from the convolutions, so
    any OSNet width loads. Returns the network on the CPU, in eval mode.
    """
    network = osnet_from_state_dict(read_state_dict(path))
    logger.info("loaded OSNet %s (%d classes) from %s", network.channels, network.num_classes, path)
    return network
