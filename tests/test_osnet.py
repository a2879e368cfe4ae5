"""OSNet x0.25: strict loading of the bundled checkpoints, shapes, and feature quality."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from reid_models.contract import ImageNormalization
from reid_models.osnet import OSNet, load_osnet, osnet_from_state_dict, osnet_x0_25
from tests.conftest import ASSETS

WEIGHTS = ASSETS / "weights"
MSMT17 = WEIGHTS / "osnet_x0_25_msmt17.pth"
MARKET1501 = WEIGHTS / "osnet_x0_25_market1501.pth"
VIDEO = ASSETS / "videos" / "epfl_terrace1-c0.mp4"

# Person boxes (x1, y1, x2, y2) in 360x288 frames of epfl_terrace1-c0, found with the bundled
# YOLO person detector (conf 0.4, imgsz 416) and checked by eye: "coat" is the man in a long
# dark coat on the left, "walker" the person walking away on the right.
PERSON_BOXES = {
    ("coat", 600): (72, 24, 140, 217),
    ("coat", 610): (63, 28, 139, 229),
    ("walker", 600): (282, 40, 332, 166),
    ("walker", 610): (289, 39, 338, 160),
}


@pytest.fixture(scope="module")
def msmt17_network() -> OSNet:
    return load_osnet(MSMT17)


@pytest.mark.parametrize(("path", "num_classes"), [(MSMT17, 1041), (MARKET1501, 751)])
def test_bundled_checkpoints_load_strictly(path: Path, num_classes: int) -> None:
    file_state = torch.load(path, map_location="cpu", weights_only=True)
    network = load_osnet(path)
    assert len(file_state) == 567
    assert network.num_classes == num_classes
    assert network.channels == (16, 64, 96, 128)
    assert network.feature_dim == 512
    assert not network.training
    model_state = network.state_dict()
    assert model_state.keys() == file_state.keys()
    for name, tensor in file_state.items():
        assert torch.equal(model_state[name], tensor), name


def test_random_x0_25_has_the_checkpoint_layout() -> None:
    file_state = torch.load(MSMT17, map_location="cpu", weights_only=True)
    model_state = osnet_x0_25(num_classes=1041).state_dict()
    assert {name: tuple(tensor.shape) for name, tensor in model_state.items()} == {
        name: tuple(tensor.shape) for name, tensor in file_state.items()
    }


def test_foreign_state_dict_is_refused() -> None:
    with pytest.raises(ValueError, match="not an OSNet state dict"):
        osnet_from_state_dict({"conv1.weight": torch.zeros(1)})


def test_shapes_for_256x128_input(msmt17_network: OSNet) -> None:
    images = torch.randn(2, 3, 256, 128)
    with torch.no_grad():
        feature_maps = msmt17_network.feature_maps(images)
        embeddings = msmt17_network(images)
        logits = msmt17_network.classify(embeddings)
    assert feature_maps.shape == (2, 128, 16, 8)
    assert embeddings.shape == (2, 512)
    assert logits.shape == (2, 1041)
    assert torch.allclose(embeddings, msmt17_network.pool(feature_maps))
    assert (embeddings >= 0).all()


def _read_frames(path: Path, frame_indices: set[int]) -> dict[int, np.ndarray]:
    """Decode sequentially (exact frames, no seeking); BGR uint8 ``(H, W, 3)`` per index."""
    capture = cv2.VideoCapture(str(path))
    frames: dict[int, np.ndarray] = {}
    try:
        for frame_index in range(max(frame_indices) + 1):
            ok, frame = capture.read()
            assert ok, f"cannot read frame {frame_index} of {path}"
            if frame_index in frame_indices:
                frames[frame_index] = frame
    finally:
        capture.release()
    return frames


def _crop_batch() -> tuple[list[tuple[str, int]], torch.Tensor]:
    """Person crops as float32 ``(N, 3, 256, 128)`` RGB in ``[0, 1]``."""
    frames = _read_frames(VIDEO, {frame_index for _, frame_index in PERSON_BOXES})
    keys = list(PERSON_BOXES)
    crops = []
    for key in keys:
        x1, y1, x2, y2 = PERSON_BOXES[key]
        crop = cv2.resize(frames[key[1]][y1:y2, x1:x2], (128, 256), interpolation=cv2.INTER_LINEAR)
        rgb = np.ascontiguousarray(crop[:, :, ::-1])
        crops.append(torch.from_numpy(rgb).permute(2, 0, 1).float() / 255.0)
    return keys, torch.stack(crops)


@pytest.mark.parametrize("path", [MSMT17, MARKET1501])
def test_same_person_is_closer_than_another_person(path: Path) -> None:
    keys, crops = _crop_batch()
    network = load_osnet(path)
    with torch.no_grad():
        features = F.normalize(network(ImageNormalization()(crops)), dim=1)
    similarity = features @ features.T
    index = {key: position for position, key in enumerate(keys)}
    same_person = [
        similarity[index[("coat", 600)], index[("coat", 610)]],
        similarity[index[("walker", 600)], index[("walker", 610)]],
    ]
    other_person = [
        similarity[index[("coat", first)], index[("walker", second)]]
        for first in (600, 610)
        for second in (600, 610)
    ]
    # Trained weights give about 0.9 vs 0.55 (MSMT17) and 0.95 vs 0.77 (Market1501); a random
    # network gives about 1.0 vs 0.99, so the margin is what shows the weights work.
    assert min(same_person) > max(other_person) + 0.1
