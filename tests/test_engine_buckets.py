"""Batch buckets: padding up to fixed engine batch sizes, chunking, and slicing results back."""

from __future__ import annotations

import numpy as np
import pytest

from engines.buckets import BatchBuckets, pad_batch, run_in_buckets


def test_powers_of_two_include_both_ends() -> None:
    assert BatchBuckets.powers_of_two(64).sizes == (1, 2, 4, 8, 16, 32, 64)
    assert BatchBuckets.powers_of_two(10, min_batch=3).sizes == (3, 4, 8, 10)
    assert BatchBuckets.every_size(2, 4).sizes == (2, 3, 4)


def test_bucket_for_picks_the_smallest_that_fits() -> None:
    buckets = BatchBuckets.of([16, 4, 1, 4])
    assert buckets.sizes == (1, 4, 16)
    assert [buckets.bucket_for(n) for n in (1, 2, 4, 5, 16)] == [1, 4, 4, 16, 16]
    with pytest.raises(ValueError, match="exceeds"):
        buckets.bucket_for(17)
    with pytest.raises(ValueError):
        BatchBuckets((4, 1))


def test_pad_batch_appends_zero_rows() -> None:
    batch = np.ones((2, 3), dtype=np.float32)
    padded = pad_batch(batch, 4)
    assert padded.shape == (4, 3) and padded.dtype == np.float32
    assert np.all(padded[:2] == 1) and np.all(padded[2:] == 0)
    assert pad_batch(batch, 2) is batch


def test_run_in_buckets_pads_chunks_and_keeps_order() -> None:
    seen: list[int] = []

    def run(batch: np.ndarray) -> np.ndarray:
        seen.append(batch.shape[0])
        return batch.sum(axis=(1, 2))[:, None] * np.array([1.0, -1.0])

    batch = np.arange(11 * 2 * 3, dtype=np.float32).reshape(11, 2, 3)
    result = run_in_buckets(batch, BatchBuckets.of([2, 4]), run)
    assert seen == [4, 4, 4]  # 4 + 4 + 3 padded to 4
    np.testing.assert_allclose(result[:, 0], batch.sum(axis=(1, 2)))
    assert result.shape == (11, 2)


def test_run_in_buckets_rejects_a_wrong_row_count() -> None:
    with pytest.raises(ValueError, match="rows"):
        run_in_buckets(np.zeros((3, 2)), BatchBuckets.of([4]), lambda batch: batch[:3])
