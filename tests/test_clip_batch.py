"""The encoder's reused host buffer (``pipeline/clip_batch.py``): the same values as
stacking and converting each batch, in memory allocated once (page-locked on CUDA)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from pipeline.clip_batch import ClipBatchBuffer
from pipeline.encode import clips_to_batch
from tests.test_encode import make_clip


def noise_clip(seed: int, length: int = 4):
    clip = make_clip(seed, length=length)
    clip.crops = np.random.default_rng(seed).integers(0, 256, clip.crops.shape, dtype=np.uint8)
    return clip


def test_filled_batches_equal_stacked_ones_bit_for_bit_in_one_reused_buffer():
    buffer = ClipBatchBuffer(max_batch=4)
    full = [noise_clip(seed) for seed in range(4)]
    first = buffer.fill(full)
    assert first.dtype == np.float32 and first.flags.c_contiguous
    np.testing.assert_array_equal(first, clips_to_batch(full))
    address = first.ctypes.data
    partial = [noise_clip(seed) for seed in range(10, 12)]
    second = buffer.fill(partial)
    np.testing.assert_array_equal(second, clips_to_batch(partial))
    assert second.shape[0] == 2 and second.ctypes.data == address
    assert buffer.allocations == 1


def test_other_clip_lengths_and_oversized_batches_get_arrays_of_their_own():
    buffer = ClipBatchBuffer(max_batch=2)
    longer = [noise_clip(seed, length=8) for seed in range(2)]
    np.testing.assert_array_equal(buffer.fill(longer), clips_to_batch(longer))
    many = [noise_clip(seed) for seed in range(3)]
    np.testing.assert_array_equal(buffer.fill(many), clips_to_batch(many))
    assert buffer.allocations == 2
    with pytest.raises(ValueError, match="one shape"):
        buffer.fill([noise_clip(0), noise_clip(1, length=8)])


def test_pinned_buffers_come_from_torch_page_locked_memory(monkeypatch: pytest.MonkeyPatch):
    requests: list[dict[str, object]] = []

    class FakeTensor:
        def __init__(self, shape: tuple[int, ...]) -> None:
            self.array = np.empty(shape, dtype=np.float32)

        def numpy(self) -> np.ndarray:
            return self.array

    def empty(shape: tuple[int, ...], dtype: object, pin_memory: bool) -> FakeTensor:
        requests.append({"shape": shape, "pin_memory": pin_memory})
        return FakeTensor(shape)

    fake_torch = types.ModuleType("torch")
    fake_torch.empty = empty  # type: ignore[attr-defined]
    fake_torch.float32 = "float32"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    buffer = ClipBatchBuffer(max_batch=3, pinned=True)
    clips = [noise_clip(seed) for seed in range(2)]
    np.testing.assert_array_equal(buffer.fill(clips), clips_to_batch(clips))
    assert requests == [{"shape": (3, 4, 3, 8, 4), "pin_memory": True}]
    assert buffer.pinned


def test_pinned_falls_back_to_plain_memory_without_cuda(monkeypatch: pytest.MonkeyPatch):
    def empty(*arguments: object, **options: object) -> object:
        raise RuntimeError("no CUDA")

    fake_torch = types.ModuleType("torch")
    fake_torch.empty = empty  # type: ignore[attr-defined]
    fake_torch.float32 = "float32"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    buffer = ClipBatchBuffer(max_batch=2, pinned=True)
    clips = [noise_clip(0)]
    np.testing.assert_array_equal(buffer.fill(clips), clips_to_batch(clips))
    assert not buffer.pinned
