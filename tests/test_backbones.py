"""Frame backbones: shapes, the registry, and weight loading (MobileNetV2 mapped by order)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from reid_models.backbones import (
    MOBILENET_V2_WEIGHTS,
    OSNET_X0_25_MSMT17_WEIGHTS,
    FrameBackbone,
    OSNetBackbone,
    TorchvisionBackbone,
    backbone_names,
    build_backbone,
    load_mobilenet_v2_features,
)


@pytest.mark.parametrize(
    ("name", "out_channels", "pooled_dim", "map_size"),
    [
        ("osnet_x0_25", 128, 512, (16, 8)),
        ("mobilenet_v2", 1280, 1280, (8, 4)),
        ("resnet50", 2048, 2048, (8, 4)),
        ("inception_v3", 2048, 2048, (6, 2)),
    ],
)
def test_shapes_for_256x128_input(
    name: str, out_channels: int, pooled_dim: int, map_size: tuple[int, int]
) -> None:
    backbone = build_backbone(name, None)
    assert isinstance(backbone, FrameBackbone)
    assert not backbone.training
    assert (backbone.out_channels, backbone.pooled_dim) == (out_channels, pooled_dim)
    with torch.no_grad():
        feature_maps = backbone(torch.randn(1, 3, 256, 128))
        pooled = backbone.pool(feature_maps)
    assert feature_maps.shape == (1, out_channels, *map_size)
    assert pooled.shape == (1, pooled_dim)


def test_unknown_backbone_lists_known_names() -> None:
    assert backbone_names() == ["inception_v3", "mobilenet_v2", "osnet_x0_25", "resnet50"]
    with pytest.raises(ValueError, match="known backbones: inception_v3, mobilenet_v2"):
        build_backbone("vgg16", None)


def test_osnet_default_weights_are_msmt17_and_pool_uses_its_fc_head() -> None:
    backbone = build_backbone("osnet_x0_25", None)
    assert isinstance(backbone, OSNetBackbone)
    file_state = torch.load(OSNET_X0_25_MSMT17_WEIGHTS, map_location="cpu", weights_only=True)
    assert torch.equal(backbone.network.conv1.conv.weight, file_state["conv1.conv.weight"])
    assert torch.equal(backbone.network.fc[0].weight, file_state["fc.0.weight"])
    assert backbone.network.classifier is None
    assert not any(name.startswith("network.classifier") for name in backbone.state_dict())
    images = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        pooled = backbone.pool(backbone(images))
        assert torch.allclose(pooled, backbone.network(images))
        assert not torch.allclose(pooled[:, :128], backbone(images).mean(dim=(2, 3)))


def test_pretrained_false_initialises_randomly() -> None:
    backbone = build_backbone("osnet_x0_25", None, pretrained=False)
    assert isinstance(backbone, OSNetBackbone)
    file_state = torch.load(OSNET_X0_25_MSMT17_WEIGHTS, map_location="cpu", weights_only=True)
    assert not torch.equal(backbone.network.conv1.conv.weight, file_state["conv1.conv.weight"])


def test_mobilenet_weights_are_mapped_by_order_and_loaded() -> None:
    file_state = torch.load(MOBILENET_V2_WEIGHTS, map_location="cpu", weights_only=True)
    backbone = build_backbone("mobilenet_v2", None)
    assert isinstance(backbone, TorchvisionBackbone)
    features = backbone.trunk
    # Original layout: block 1 is a flat Sequential (conv, bn, relu, conv, bn); torchvision
    # nests the first conv+bn+relu as conv.0 and names the projection conv.1 / conv.2.
    assert torch.equal(features[1].conv[0][0].weight, file_state["features.1.conv.0.weight"])
    assert torch.equal(features[1].conv[1].weight, file_state["features.1.conv.3.weight"])
    assert torch.equal(features[1].conv[2].running_var, file_state["features.1.conv.4.running_var"])
    assert torch.equal(features[17].conv[2].weight, file_state["features.17.conv.6.weight"])
    assert torch.equal(features[18][0].weight, file_state["features.18.0.weight"])
    # All 312 tensors land somewhere, in order.
    for (source_name, tensor), loaded in zip(
        file_state.items(), features.state_dict().values(), strict=True
    ):
        assert torch.equal(tensor, loaded), source_name


def test_mobilenet_torchvision_layout_loads_by_name() -> None:
    source = torchvision.models.mobilenet_v2(weights=None)
    features = torchvision.models.mobilenet_v2(weights=None).features
    assert load_mobilenet_v2_features(features, source.state_dict()) == "name"
    assert torch.equal(features[5].conv[1][0].weight, source.features[5].conv[1][0].weight)


def test_mobilenet_weights_that_do_not_fit_are_refused() -> None:
    file_state = torch.load(MOBILENET_V2_WEIGHTS, map_location="cpu", weights_only=True)
    features = torchvision.models.mobilenet_v2(weights=None).features
    truncated = dict(list(file_state.items())[:-1])
    with pytest.raises(ValueError, match="feature tensors"):
        load_mobilenet_v2_features(features, truncated)
    shuffled = dict(file_state)
    shuffled["features.2.conv.0.weight"] = torch.zeros(96, 16, 3, 3)
    with pytest.raises(ValueError, match="does not fit"):
        load_mobilenet_v2_features(features, shuffled)


def test_resnet50_loads_a_torchvision_checkpoint(tmp_path: Path) -> None:
    source = torchvision.models.resnet50(weights=None)
    path = tmp_path / "resnet50.pth"
    torch.save(source.state_dict(), path)
    backbone = build_backbone("resnet50", path)
    assert isinstance(backbone, TorchvisionBackbone)
    assert torch.equal(backbone.trunk.layer4[2].conv3.weight, source.layer4[2].conv3.weight)
    assert torch.equal(backbone.trunk.bn1.running_var, source.bn1.running_var)
