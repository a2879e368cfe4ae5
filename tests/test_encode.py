"""The batching encoder with a small fake engine: batch sizes, waiting, delivery, failures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from engines.base import Engine
from pipeline.clips import Clip
from pipeline.encode import BatchingEncoder, clips_to_batch

CROP_HEIGHT, CROP_WIDTH = 8, 4


class MeanColourEngine:
    """Embeds a clip as its mean RGB colour: float32 ``(batch, 3)``; records every batch."""

    name = "mean-colour"

    def __init__(
        self,
        fail_on_calls: tuple[int, ...] = (),
        padded_on_calls: tuple[int, ...] = (),
        seconds_per_batch: float = 0.0,
    ):
        self.fail_on_calls = fail_on_calls
        self.padded_on_calls = padded_on_calls
        self.seconds_per_batch = seconds_per_batch
        self.batch_shapes: list[tuple[int, ...]] = []

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.batch_shapes.append(batch.shape)
        if len(self.batch_shapes) in self.fail_on_calls:
            raise RuntimeError("engine failure on purpose")
        if self.seconds_per_batch:
            time.sleep(self.seconds_per_batch)
        embeddings = batch.mean(axis=(1, 3, 4))
        if len(self.batch_shapes) in self.padded_on_calls:  # like a fixed-batch engine
            return np.concatenate([embeddings, np.zeros((1, 3), dtype=np.float32)])
        return embeddings

    @property
    def batch_sizes(self) -> list[int]:
        return [shape[0] for shape in self.batch_shapes]


def bgr_of(track_id: int) -> tuple[int, int, int]:
    """A distinct BGR colour per track id (ids below 1000)."""
    return (track_id % 10 * 25, track_id // 10 % 10 * 25, track_id // 100 * 25)


def expected_embedding(track_id: int) -> np.ndarray:
    blue, green, red = bgr_of(track_id)
    return np.array([red, green, blue], dtype=np.float32) / np.float32(255.0)


def make_clip(track_id: int, camera_id: int = 0, length: int = 4) -> Clip:
    crops = np.empty((length, CROP_HEIGHT, CROP_WIDTH, 3), dtype=np.uint8)
    crops[:] = bgr_of(track_id)
    return Clip(
        camera_id=camera_id,
        track_id=track_id,
        crops=crops,
        frame_indices=np.arange(length, dtype=np.int64),
        quality=1.0,
        final=False,
        first_timestamp=0.0,
        last_timestamp=1.0,
        last_frame_index=length - 1,
        last_box=np.zeros(4, dtype=np.float32),
        captured_at=0.0,
    )


@pytest.fixture
def encoders() -> Iterator[list[BatchingEncoder]]:
    """Encoders appended here are closed at teardown."""
    created: list[BatchingEncoder] = []
    yield created
    for encoder in created:
        encoder.close()


def test_clips_to_batch_is_float32_rgb_in_unit_range_channels_first():
    rng = np.random.default_rng(0)
    first, second = make_clip(1), make_clip(2)
    first.crops = rng.integers(0, 256, first.crops.shape, dtype=np.uint8)
    second.crops[..., :] = (255, 0, 0)  # pure blue in BGR
    batch = clips_to_batch([first, second])
    assert batch.shape == (2, 4, 3, CROP_HEIGHT, CROP_WIDTH)
    assert batch.dtype == np.float32 and batch.flags["C_CONTIGUOUS"]
    assert batch.min() >= 0.0 and batch.max() <= 1.0
    for channel_rgb, channel_bgr in ((0, 2), (1, 1), (2, 0)):
        assert np.array_equal(
            batch[0, :, channel_rgb], first.crops[..., channel_bgr].astype(np.float32) / 255
        )
    assert np.all(batch[1, :, 2] == 1.0)  # blue is the last RGB channel
    assert np.all(batch[1, :, :2] == 0.0)


def test_fake_engine_follows_the_engine_protocol():
    assert isinstance(MeanColourEngine(), Engine)


def test_batches_never_exceed_max_batch(encoders: list[BatchingEncoder]):
    engine = MeanColourEngine()
    encoder = BatchingEncoder(engine, max_batch=4, max_wait_ms=2000)
    encoders.append(encoder)
    encoder.submit([make_clip(track_id) for track_id in range(24)])
    embedded = encoder.drain(timeout_seconds=10)
    assert len(embedded) == 24
    assert engine.batch_sizes == [4] * 6  # all waiting: full batches, no waiting for more
    assert encoder.batches_run == 6 and encoder.clips_encoded == 24


def test_a_lone_clip_is_encoded_after_about_max_wait(encoders: list[BatchingEncoder]):
    engine = MeanColourEngine()
    encoder = BatchingEncoder(engine, max_batch=8, max_wait_ms=150)
    encoders.append(encoder)
    submitted = time.monotonic()
    encoder.submit([make_clip(5)])
    embedded: list = []
    while not embedded and time.monotonic() - submitted < 5:
        embedded = encoder.collect()
        time.sleep(0.005)
    waited = time.monotonic() - submitted
    assert len(embedded) == 1 and engine.batch_sizes == [1]
    assert 0.14 <= waited < 1.0, waited


def test_every_clip_comes_back_once_with_its_own_embedding(encoders: list[BatchingEncoder]):
    engine = MeanColourEngine()
    encoder = BatchingEncoder(engine, max_batch=8, max_wait_ms=5)
    encoders.append(encoder)

    def submit_camera(camera_id: int) -> None:
        for start in range(0, 100, 10):
            encoder.submit(
                [make_clip(camera_id * 100 + i, camera_id) for i in range(start, start + 10)]
            )
            time.sleep(0.002)

    threads = [threading.Thread(target=submit_camera, args=(camera,)) for camera in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    embedded = encoder.drain(timeout_seconds=10)
    assert encoder.pending == 0
    keys = [item.key for item in embedded]
    assert len(keys) == 300 and len(set(keys)) == 300
    for item in embedded:
        assert item.embedding.dtype == np.float32
        assert np.allclose(item.embedding, expected_embedding(item.clip.track_id), atol=1e-6)
        assert item.encoded_at > 0
    assert max(engine.batch_sizes) <= 8
    assert encoder.collect() == []


def test_one_submitter_gets_results_in_submission_order(encoders: list[BatchingEncoder]):
    encoder = BatchingEncoder(MeanColourEngine(), max_batch=3, max_wait_ms=1)
    encoders.append(encoder)
    for track_id in range(10):
        encoder.submit([make_clip(track_id)])
    assert [item.clip.track_id for item in encoder.drain()] == list(range(10))


def test_drain_waits_for_every_submitted_clip(encoders: list[BatchingEncoder]):
    engine = MeanColourEngine(seconds_per_batch=0.03)
    batches: list[tuple[int, float]] = []
    encoder = BatchingEncoder(
        engine, max_batch=2, max_wait_ms=1, on_batch=lambda size, ms: batches.append((size, ms))
    )
    encoders.append(encoder)
    encoder.submit([make_clip(track_id) for track_id in range(10)])
    assert encoder.pending == 10
    embedded = encoder.drain(timeout_seconds=10)
    assert sorted(item.clip.track_id for item in embedded) == list(range(10))
    assert encoder.pending == 0
    assert [size for size, _ in batches] == [2] * 5
    assert all(ms >= 25 for _, ms in batches)
    assert encoder.drain(timeout_seconds=1) == []


def test_clips_of_different_lengths_are_batched_apart(encoders: list[BatchingEncoder]):
    engine = MeanColourEngine()
    encoder = BatchingEncoder(engine, max_batch=16, max_wait_ms=2000)
    encoders.append(encoder)
    clips = [make_clip(track_id, length=4 if track_id % 2 else 8) for track_id in range(16)]
    encoder.submit(clips)
    embedded = encoder.drain(timeout_seconds=10)
    assert sorted(item.clip.track_id for item in embedded) == list(range(16))
    assert sorted(shape[:2] for shape in engine.batch_shapes) == [(8, 4), (8, 8)]


def test_an_engine_failure_skips_its_batch_and_the_worker_lives_on(
    encoders: list[BatchingEncoder], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.ERROR, logger="pipeline.encode")
    engine = MeanColourEngine(fail_on_calls=(2,))
    encoder = BatchingEncoder(engine, max_batch=2, max_wait_ms=2000)
    encoders.append(encoder)
    encoder.submit([make_clip(track_id) for track_id in range(6)])
    embedded = encoder.drain(timeout_seconds=10)
    assert sorted(item.clip.track_id for item in embedded) == [0, 1, 4, 5]  # batch 2 lost
    assert encoder.pending == 0, "failed clips must not be waited for forever"
    assert "encoder failed on a batch of 2 clips" in caplog.text
    encoder.submit([make_clip(track_id) for track_id in (7, 8)])
    assert [item.clip.track_id for item in encoder.drain(timeout_seconds=10)] == [7, 8]
    assert encoder.clips_encoded == 6 and encoder.batches_run == 3


def test_an_engine_returning_the_wrong_batch_size_does_not_kill_the_worker(
    encoders: list[BatchingEncoder], caplog: pytest.LogCaptureFixture
):
    caplog.set_level(logging.ERROR, logger="pipeline.encode")
    engine = MeanColourEngine(padded_on_calls=(1,))
    encoder = BatchingEncoder(engine, max_batch=2, max_wait_ms=2000)
    encoders.append(encoder)
    encoder.submit([make_clip(track_id) for track_id in range(4)])
    embedded = encoder.drain(timeout_seconds=5)
    assert sorted(item.clip.track_id for item in embedded) == [2, 3]
    assert encoder.pending == 0
    assert "3 embeddings for 2 clips" in caplog.text


def test_close_stops_the_worker():
    encoder = BatchingEncoder(MeanColourEngine(), max_batch=2, max_wait_ms=1)
    encoder.submit([make_clip(1)])
    assert len(encoder.drain(timeout_seconds=5)) == 1
    encoder.close()
    encoder.submit([make_clip(2)])
    assert encoder.drain(timeout_seconds=0.2) == []
    assert encoder.pending == 1


def _collect_all(encoder: BatchingEncoder, timeout_seconds: float = 20.0) -> list:
    return encoder.drain(timeout_seconds)


def test_block_overflow_bounds_the_queue_and_loses_nothing(encoders: list[BatchingEncoder]):
    engine = MeanColourEngine(seconds_per_batch=0.02)
    encoder = BatchingEncoder(engine, max_batch=2, max_wait_ms=1, max_pending_clips=4)
    encoders.append(encoder)
    seen_waiting: list[int] = []
    original_infer = engine.infer

    def recording_infer(batch: np.ndarray) -> np.ndarray:
        seen_waiting.append(encoder.waiting)
        return original_infer(batch)

    engine.infer = recording_infer  # type: ignore[method-assign]
    encoder.submit([make_clip(track_id) for track_id in range(30)])
    embedded = _collect_all(encoder)
    assert sorted(item.clip.track_id for item in embedded) == list(range(30))
    assert encoder.clips_dropped == 0
    assert max(seen_waiting) <= 4


def test_shed_overflow_drops_oldest_refresh_clips_never_final_ones(
    encoders: list[BatchingEncoder], caplog: pytest.LogCaptureFixture
):
    engine = MeanColourEngine(seconds_per_batch=0.2)
    encoder = BatchingEncoder(
        engine, max_batch=2, max_wait_ms=1, max_pending_clips=4, overflow="shed"
    )
    encoders.append(encoder)
    clips = [make_clip(track_id) for track_id in range(40)]
    for clip in clips[::5]:
        clip.final = True
    with caplog.at_level(logging.WARNING):
        encoder.submit(clips)  # returns at once: live cameras never wait
        assert encoder.waiting <= 4 + 8 + 1  # the bound, final clips kept beyond it, the newest
        embedded = _collect_all(encoder)
    returned = {item.clip.track_id for item in embedded}
    assert encoder.clips_dropped > 0
    assert len(returned) + encoder.clips_dropped == 40
    assert {clip.track_id for clip in clips if clip.final} <= returned
    assert 39 in returned  # the newest clip survives; the oldest refresh clips went
    assert "encoder overloaded" in caplog.text
