"""Frame backbones behind one interface, and the registry that builds them by name.

A :class:`FrameBackbone` turns normalised frames into feature maps and pools those into one
global feature per frame. Known backbones:

- ``osnet_x0_25``: OSNet x0.25 (128-channel maps at ``1/16`` resolution; pooled 512-d through
  its ``fc`` head). Default weights: ``assets/weights/osnet_x0_25_msmt17.pth``.
- ``mobilenet_v2``: torchvision's ``mobilenet_v2().features`` (1280 channels, ``1/32``).
  Default weights: ``assets/weights/mobilenetv2_imagenet_bottleneck.pt``, a checkpoint in the
  original (tonylins) MobileNetV2 layout whose names differ from torchvision's inside every
  inverted-residual block; it is mapped onto torchvision's modules by order (see
  :func:`load_mobilenet_v2_features`).
- ``resnet50``: torchvision ResNet-50 without ``avgpool``/``fc`` (2048 channels, ``1/32``).
- ``inception_v3``: torchvision Inception-v3 up to ``Mixed_7c`` (2048 channels; ``6 x 2`` maps
  for ``256 x 128`` input). ResNet-50 and Inception-v3 have no bundled weights, so they start
  from random initialisation unless a checkpoint is given (torchvision layout; ``fc.*`` and
  ``AuxLogits.*`` entries are ignored).
"""

from __future__ import annotations

import abc
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn

from reid_models.osnet import OSNet, osnet_from_state_dict, osnet_x0_25
from reid_models.state_dicts import read_state_dict

logger = logging.getLogger(__name__)

WEIGHTS_DIRECTORY = Path(__file__).resolve().parents[1] / "assets" / "weights"
OSNET_X0_25_MSMT17_WEIGHTS = WEIGHTS_DIRECTORY / "osnet_x0_25_msmt17.pth"
OSNET_X0_25_MARKET1501_WEIGHTS = WEIGHTS_DIRECTORY / "osnet_x0_25_market1501.pth"
MOBILENET_V2_WEIGHTS = WEIGHTS_DIRECTORY / "mobilenetv2_imagenet_bottleneck.pt"

# Prefixes that wrappers put before module names, removed in this order: DataParallel, an
# encoder's ``backbone`` attribute, then the attributes of our FrameBackbone classes.
_WRAPPER_PREFIXES = ("module.", "backbone.", "trunk.", "network.")


class FrameBackbone(nn.Module, metaclass=abc.ABCMeta):
    """A per-frame feature extractor (abstract: subclasses define :meth:`forward`).

    Attributes:
        out_channels: channels ``C`` of the feature maps returned by :meth:`forward`.
        pooled_dim: size ``D`` of the global feature returned by :meth:`pool`.
    """

    out_channels: int
    pooled_dim: int

    @abc.abstractmethod
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Feature maps of normalised frames.

        Args:
            images: float ``(N, 3, H, W)``, RGB normalised with the ImageNet mean/std.

        Returns:
            float ``(N, out_channels, h, w)`` with ``h, w`` the input size over the stride.
        """

    def trunk_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Everything before the last stage: ``forward(x) == last_stage(trunk_maps(x))``.

        Training that keeps the trunk frozen caches its maps once and trains the last stage
        on them. Unless overridden the trunk is the whole network and the last stage nothing.
        """
        return self.forward(images)

    def last_stage(self, trunk_maps: torch.Tensor) -> torch.Tensor:
        """The last stage, from :meth:`trunk_maps` to :meth:`forward` maps."""
        return trunk_maps

    def last_stage_modules(self) -> list[nn.Module]:
        """The modules of :meth:`last_stage` and :meth:`pool` (what "unfreezing the last
        stage" trains); empty unless overridden."""
        return []

    def pool(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """The backbone's global feature: a global average pool unless overridden.

        Args:
            feature_maps: float ``(N, out_channels, h, w)`` from :meth:`forward`.

        Returns:
            float ``(N, pooled_dim)``, not normalised.
        """
        return feature_maps.mean(dim=(2, 3))


class OSNetBackbone(FrameBackbone):
    """OSNet feature maps ``(N, 128, H/16, W/16)``; pooled by its own ``fc`` head to 512-d.

    The network is kept without its image-ReID classifier: the training identities of the
    checkpoint are no part of a frame backbone.
    """

    def __init__(self, network: OSNet) -> None:
        super().__init__()
        self.network = network
        self.out_channels = network.out_channels
        self.pooled_dim = network.feature_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.feature_maps(images)

    def trunk_maps(self, images: torch.Tensor) -> torch.Tensor:
        """Maps before ``conv5``: float ``(N, 128, H/16, W/16)`` for x0.25."""
        return self.network.trunk_maps(images)

    def last_stage(self, trunk_maps: torch.Tensor) -> torch.Tensor:
        """``conv5`` (1x1 convolution, batch norm, ReLU)."""
        return self.network.conv5(trunk_maps)

    def last_stage_modules(self) -> list[nn.Module]:
        """``conv5`` and the ``fc`` head."""
        return [self.network.conv5, self.network.fc]

    def pool(self, feature_maps: torch.Tensor) -> torch.Tensor:
        """Average pool and ``fc`` (linear, batch norm, ReLU): float ``(N, 512)``, >= 0."""
        return self.network.pool(feature_maps)


class TorchvisionBackbone(FrameBackbone):
    """A torchvision convolutional trunk (no pooling or classifier); pooled by global average."""

    def __init__(self, trunk: nn.Sequential, out_channels: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.out_channels = out_channels
        self.pooled_dim = out_channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.trunk(images)


def _without_prefixes(
    state_dict: Mapping[str, torch.Tensor], prefixes: tuple[str, ...]
) -> dict[str, torch.Tensor]:
    return {name: tensor for name, tensor in state_dict.items() if not name.startswith(prefixes)}


def build_osnet_x0_25(weights: Path | None) -> OSNetBackbone:
    """OSNet x0.25 from a torchreid-layout checkpoint (its classifier is dropped), or randomly
    initialised when ``None``."""
    if weights is None:
        return OSNetBackbone(osnet_x0_25(num_classes=None))
    state_dict = read_state_dict(weights, _WRAPPER_PREFIXES)
    return OSNetBackbone(osnet_from_state_dict(state_dict, include_classifier=False))


def _mobilenet_block_and_leaf(name: str) -> tuple[str, str]:
    """``"3.conv.0.weight"`` -> ``("3", "weight")``: the block index and the tensor kind."""
    parts = name.split(".")
    return parts[0], parts[-1]


def load_mobilenet_v2_features(
    features: nn.Sequential, state_dict: Mapping[str, torch.Tensor]
) -> str:
    """Load MobileNetV2 ``features`` weights into torchvision's ``mobilenet_v2().features``.

    Accepted layouts, after removing a leading ``features.`` and dropping ``classifier.*``:

    - torchvision's own names (``1.conv.0.0.weight``): loaded by name.
    - the original MobileNetV2 layout (``1.conv.0.weight``, ``1.conv.1.weight``, ...): same
      tensors in the same order, but every inverted-residual block is one flat ``Sequential``
      (conv, bn, relu, conv, bn, ...) where torchvision nests ``Conv2dNormActivation``s. Only
      the stem (block 0) and the last 1x1 convolution (block 18) share names. Such a file is
      mapped by order, and every pair must agree in block index, tensor kind (``weight``,
      ``running_mean``, ...) and shape.

    Both are loaded with ``strict=True``. Returns ``"name"`` or ``"order"``: how it mapped.
    """
    source = {
        name.removeprefix("features."): tensor
        for name, tensor in state_dict.items()
        if not name.startswith("classifier.")
    }
    target = features.state_dict()
    if source.keys() == target.keys():
        features.load_state_dict(source, strict=True)
        return "name"
    if len(source) != len(target):
        raise ValueError(
            f"MobileNetV2 weights hold {len(source)} feature tensors, torchvision expects "
            f"{len(target)}"
        )
    remapped: OrderedDict[str, torch.Tensor] = OrderedDict()
    for (source_name, tensor), (target_name, expected) in zip(
        source.items(), target.items(), strict=True
    ):
        if _mobilenet_block_and_leaf(source_name) != _mobilenet_block_and_leaf(target_name):
            raise ValueError(f"MobileNetV2 weights: {source_name} cannot map to {target_name}")
        if tensor.shape != expected.shape:
            raise ValueError(
                f"MobileNetV2 weights: {source_name} {tuple(tensor.shape)} does not fit "
                f"{target_name} {tuple(expected.shape)}"
            )
        remapped[target_name] = tensor
    features.load_state_dict(remapped, strict=True)
    return "order"


def build_mobilenet_v2(weights: Path | None) -> TorchvisionBackbone:
    """torchvision MobileNetV2 ``features`` (1280 channels), random unless ``weights`` given."""
    features = torchvision.models.mobilenet_v2(weights=None).features
    if weights is not None:
        mapping = load_mobilenet_v2_features(features, read_state_dict(weights, _WRAPPER_PREFIXES))
        logger.info("loaded MobileNetV2 features from %s (mapped by %s)", weights, mapping)
    return TorchvisionBackbone(features, out_channels=1280)


def _load_torchvision_trunk(
    trunk: nn.Sequential, weights: Path, ignored_prefixes: tuple[str, ...]
) -> None:
    state_dict = _without_prefixes(read_state_dict(weights, _WRAPPER_PREFIXES), ignored_prefixes)
    trunk.load_state_dict(state_dict, strict=True)
    logger.info("loaded %d tensors from %s", len(state_dict), weights)


def build_resnet50(weights: Path | None) -> TorchvisionBackbone:
    """torchvision ResNet-50 up to ``layer4`` (2048 channels, stride 32)."""
    network = torchvision.models.resnet50(weights=None)
    trunk = nn.Sequential(
        OrderedDict(
            (name, module)
            for name, module in network.named_children()
            if name not in ("avgpool", "fc")
        )
    )
    if weights is not None:
        _load_torchvision_trunk(trunk, weights, ignored_prefixes=("fc.",))
    return TorchvisionBackbone(trunk, out_channels=2048)


def build_inception_v3(weights: Path | None) -> TorchvisionBackbone:
    """torchvision Inception-v3 up to ``Mixed_7c`` (2048 channels), without the auxiliary head."""
    network = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=True)
    trunk = nn.Sequential(
        OrderedDict(
            (name, module)
            for name, module in network.named_children()
            if name not in ("avgpool", "dropout", "fc")
        )
    )
    if weights is not None:
        _load_torchvision_trunk(trunk, weights, ignored_prefixes=("fc.", "AuxLogits."))
    return TorchvisionBackbone(trunk, out_channels=2048)


@dataclass(frozen=True)
class BackboneSpec:
    """How to build one backbone: ``build(weights)`` (``None`` = random), and its default file."""

    build: Callable[[Path | None], FrameBackbone]
    default_weights: Path | None = None


BACKBONES: dict[str, BackboneSpec] = {
    "osnet_x0_25": BackboneSpec(build_osnet_x0_25, OSNET_X0_25_MSMT17_WEIGHTS),
    "mobilenet_v2": BackboneSpec(build_mobilenet_v2, MOBILENET_V2_WEIGHTS),
    "resnet50": BackboneSpec(build_resnet50),
    "inception_v3": BackboneSpec(build_inception_v3),
}


def backbone_names() -> list[str]:
    """Names accepted by :func:`build_backbone`, sorted."""
    return sorted(BACKBONES)


def build_backbone(
    name: str, weights: Path | None = None, *, pretrained: bool = True
) -> FrameBackbone:
    """Build a frame backbone by name, in eval mode on the CPU.

    Args:
        name: one of :func:`backbone_names`.
        weights: checkpoint to load. ``None`` means the backbone's bundled default weights
            (OSNet: MSMT17; MobileNetV2: ImageNet), or random initialisation for backbones
            without one (``resnet50``, ``inception_v3``).
        pretrained: ``False`` ignores the default weights and initialises randomly (used when a
            full encoder state is about to be loaded over it); an explicit ``weights`` still
            wins.

    Raises:
        ValueError: unknown ``name``, or weights that do not fit the backbone.
    """
    spec = BACKBONES.get(name)
    if spec is None:
        known = ", ".join(backbone_names())
        raise ValueError(f"unknown backbone {name!r}; known backbones: {known}")
    if weights is None and pretrained:
        weights = spec.default_weights
        if weights is None:
            logger.info("backbone %s has no bundled weights: random initialisation", name)
    backbone = spec.build(None if weights is None else Path(weights))
    return backbone.eval()
