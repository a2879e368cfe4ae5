"""One transform per tracklet: the same for every crop, within range, each part as named."""

from __future__ import annotations

import numpy as np

from reid_models.tracklet_augmentation import (
    AugmentationRanges,
    TrackletTransform,
    draw_transform,
)

PLAIN = TrackletTransform(
    flip=False,
    channel_gains=(1.0, 1.0, 1.0),
    brightness=0.0,
    zoom=1.0,
    shift=(0.0, 0.0),
    erase=None,
    erase_colour=(0.0, 0.0, 0.0),
)


def crop(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, (3, 32, 16)).astype(np.float32)


def test_plain_transform_is_the_identity_and_flip_mirrors() -> None:
    image = crop()
    np.testing.assert_allclose(PLAIN.apply(image), image, atol=1e-6)
    flipped = TrackletTransform(**{**PLAIN.__dict__, "flip": True})
    np.testing.assert_allclose(flipped.apply(image), image[:, :, ::-1], atol=1e-6)


def test_erasing_and_gains() -> None:
    image = crop()
    erased = TrackletTransform(
        **{**PLAIN.__dict__, "erase": (0.0, 0.0, 0.5, 0.5), "erase_colour": (0.2, 0.4, 0.6)}
    ).apply(image)
    np.testing.assert_allclose(
        erased[:, :16, :8], np.broadcast_to([[[0.2]], [[0.4]], [[0.6]]], (3, 16, 8))
    )
    np.testing.assert_allclose(erased[:, 16:], image[:, 16:], atol=1e-6)
    darker = TrackletTransform(**{**PLAIN.__dict__, "channel_gains": (0.5, 0.5, 0.5)}).apply(image)
    np.testing.assert_allclose(darker, image * 0.5, atol=1e-6)


def test_zoom_keeps_the_size_and_magnifies() -> None:
    image = np.zeros((3, 32, 16), np.float32)
    image[:, 8:24, 4:12] = 1.0  # a bright centre
    zoomed = TrackletTransform(**{**PLAIN.__dict__, "zoom": 1.5, "shift": (0.5, 0.5)}).apply(image)
    assert zoomed.shape == image.shape and zoomed.dtype == np.float32
    assert zoomed.mean() > image.mean()


def test_one_draw_treats_every_crop_alike_and_stays_in_range() -> None:
    generator = np.random.default_rng(3)
    for _ in range(20):
        transform = draw_transform(AugmentationRanges(), generator)
        assert 1.0 <= transform.zoom <= 1.1
        first, second = crop(1), crop(2)
        outputs = [transform.apply(first), transform.apply(second)]
        assert all(out.min() >= 0.0 and out.max() <= 1.0 for out in outputs)
        # Same transform, same result for the same crop.
        np.testing.assert_array_equal(transform.apply(first), outputs[0])
