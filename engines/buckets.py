"""Batch buckets: pad a batch up to one of an engine's fixed batch sizes, and slice results.

Engines with fixed shapes (a ``torch.compile``/CUDA-graph capture per size, a TensorRT profile
with a minimum batch, ONNX Runtime CUDA with cached kernels per shape) run best on a few batch
sizes. :func:`run_in_buckets` turns any batch into such sizes: a batch larger than the
biggest bucket is split into chunks, each chunk is zero-padded up to the smallest bucket that
holds it, and only the real rows of each result are kept, in input order.

Padding rows are all zeros (a black clip, valid input for every encoder); encoders embed each
clip independently in eval mode, so padding never changes the real rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class BatchBuckets:
    """The batch sizes an engine runs, sorted ascending and distinct.

    Attributes:
        sizes: allowed batch sizes; the last one is the largest batch per engine call.
    """

    sizes: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("at least one bucket size is needed")
        if any(size < 1 for size in self.sizes):
            raise ValueError(f"bucket sizes must be >= 1, got {self.sizes}")
        if tuple(sorted(set(self.sizes))) != self.sizes:
            raise ValueError(f"bucket sizes must be sorted and distinct, got {self.sizes}")

    @classmethod
    def of(cls, sizes: Iterable[int]) -> BatchBuckets:
        """Buckets from any iterable of sizes (sorted and deduplicated here)."""
        return cls(tuple(sorted({int(size) for size in sizes})))

    @classmethod
    def powers_of_two(cls, max_batch: int, min_batch: int = 1) -> BatchBuckets:
        """``min_batch``, the powers of two between, and ``max_batch``: 1, 2, 4, ..., 64."""
        if not 1 <= min_batch <= max_batch:
            raise ValueError(f"need 1 <= min_batch <= max_batch, got {min_batch}, {max_batch}")
        sizes = {min_batch, max_batch}
        size = 1
        while size < max_batch:
            if size > min_batch:
                sizes.add(size)
            size *= 2
        return cls.of(sizes)

    @classmethod
    def every_size(cls, min_batch: int, max_batch: int) -> BatchBuckets:
        """Every size from ``min_batch`` to ``max_batch`` (a dynamic-shape range: padding only
        below ``min_batch``, chunking only above ``max_batch``)."""
        if not 1 <= min_batch <= max_batch:
            raise ValueError(f"need 1 <= min_batch <= max_batch, got {min_batch}, {max_batch}")
        return cls(tuple(range(min_batch, max_batch + 1)))

    @property
    def max_batch(self) -> int:
        return self.sizes[-1]

    def bucket_for(self, batch_size: int) -> int:
        """The smallest bucket that holds ``batch_size`` rows.

        Raises:
            ValueError: ``batch_size`` is below 1 or above the largest bucket.
        """
        if batch_size < 1:
            raise ValueError(f"batch size must be >= 1, got {batch_size}")
        for size in self.sizes:
            if size >= batch_size:
                return size
        raise ValueError(f"batch of {batch_size} exceeds the largest bucket {self.max_batch}")


def pad_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` with zero rows appended along axis 0 up to ``size`` rows (itself if equal)."""
    missing = size - batch.shape[0]
    if missing < 0:
        raise ValueError(f"cannot pad {batch.shape[0]} rows down to {size}")
    if missing == 0:
        return batch
    padding = np.zeros((missing, *batch.shape[1:]), dtype=batch.dtype)
    return np.concatenate([batch, padding], axis=0)


def run_in_buckets(
    batch: np.ndarray,
    buckets: BatchBuckets,
    run: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Run ``run`` on bucket-sized pieces of ``batch`` and return one row per input row.

    Args:
        batch: any array with the batch on axis 0 (at least one row).
        buckets: the sizes ``run`` accepts.
        run: maps a ``(bucket, ...)`` array to a ``(bucket, ...)`` array.

    Returns:
        ``run``'s outputs for the real rows, concatenated in input order.
    """
    if batch.shape[0] == 0:
        raise ValueError("empty batch")
    outputs: list[np.ndarray] = []
    for start in range(0, batch.shape[0], buckets.max_batch):
        chunk = batch[start : start + buckets.max_batch]
        bucket = buckets.bucket_for(chunk.shape[0])
        result = np.asarray(run(pad_batch(chunk, bucket)))
        if result.shape[0] != bucket:
            raise ValueError(f"engine returned {result.shape[0]} rows for a batch of {bucket}")
        outputs.append(result[: chunk.shape[0]])
    return outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=0)
