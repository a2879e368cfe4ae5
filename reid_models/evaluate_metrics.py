"""NumPy reference retrieval metrics: CMC (rank-k accuracy) and mAP, MARS/Market protocol.

For every query, the gallery is ranked by increasing distance. Gallery entries that show the
same identity *and* come from the same camera as the query are removed before scoring (they
are trivially easy matches; this also removes the query itself when it sits in the gallery).
A query whose identity has no remaining gallery entry is skipped, as in torchreid's
``eval_market1501``. This module is the slow, obviously-correct reference that any fast path
(GPU, batched) is tested against.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrievalMetrics:
    """Scores of one query set against one gallery.

    Attributes:
        cmc: float64 ``(max_rank,)``; ``cmc[k - 1]`` is the fraction of valid queries with a
            correct match within the first ``k`` ranks, non-decreasing, in ``[0, 1]``.
        mean_average_precision: mean over valid queries of the average precision, in ``[0, 1]``.
        valid_query_count: queries that had at least one correct gallery entry after removal.
    """

    cmc: np.ndarray
    mean_average_precision: float
    valid_query_count: int

    def rank(self, k: int) -> float:
        """Rank-``k`` accuracy in ``[0, 1]`` (``k`` from 1 to ``max_rank``)."""
        if not 1 <= k <= self.cmc.shape[0]:
            raise ValueError(f"rank must be in [1, {self.cmc.shape[0]}], got {k}")
        return float(self.cmc[k - 1])

    @property
    def rank1(self) -> float:
        return self.rank(1)

    @property
    def rank5(self) -> float:
        return self.rank(5)

    @property
    def rank10(self) -> float:
        return self.rank(10)


def pairwise_distances(
    query_features: np.ndarray,
    gallery_features: np.ndarray,
    metric: Literal["euclidean", "cosine"] = "euclidean",
) -> np.ndarray:
    """Distances between every query and every gallery feature.

    Args:
        query_features: float ``(num_query, D)``.
        gallery_features: float ``(num_gallery, D)``.
        metric: ``euclidean`` (L2 distance, ``>= 0``) or ``cosine`` (``1 - cos``, in ``[0, 2]``).

    Returns:
        float64 ``(num_query, num_gallery)``.
    """
    query = np.asarray(query_features, dtype=np.float64)
    gallery = np.asarray(gallery_features, dtype=np.float64)
    if query.ndim != 2 or gallery.ndim != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(f"expected (Q, D) and (G, D), got {query.shape} and {gallery.shape}")
    if metric == "cosine":
        query = query / np.maximum(np.linalg.norm(query, axis=1, keepdims=True), 1e-12)
        gallery = gallery / np.maximum(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12)
        return 1.0 - query @ gallery.T
    if metric == "euclidean":
        squared = (
            np.sum(query**2, axis=1)[:, None]
            + np.sum(gallery**2, axis=1)[None, :]
            - 2.0 * query @ gallery.T
        )
        return np.sqrt(np.maximum(squared, 0.0))
    raise ValueError(f"unknown metric {metric!r}")


def evaluate_retrieval(
    distances: np.ndarray,
    query_identities: np.ndarray,
    gallery_identities: np.ndarray,
    query_cameras: np.ndarray,
    gallery_cameras: np.ndarray,
    max_rank: int = 10,
) -> RetrievalMetrics:
    """CMC and mAP with same-identity-same-camera gallery entries removed per query.

    Args:
        distances: float ``(num_query, num_gallery)``, smaller is more similar. Ties are broken
            by gallery order (stable sort), so results are deterministic.
        query_identities: ``(num_query,)`` identity labels (any comparable dtype).
        gallery_identities: ``(num_gallery,)``.
        query_cameras: ``(num_query,)`` camera labels.
        gallery_cameras: ``(num_gallery,)``.
        max_rank: length of the returned CMC curve. When fewer gallery entries remain than
            ``max_rank``, the curve is extended with its last value.

    Returns:
        :class:`RetrievalMetrics`.

    Raises:
        ValueError: on shape mismatches, or when no query has a valid match.
    """
    distances = np.asarray(distances)
    query_identities = np.asarray(query_identities)
    gallery_identities = np.asarray(gallery_identities)
    query_cameras = np.asarray(query_cameras)
    gallery_cameras = np.asarray(gallery_cameras)
    query_count, gallery_count = distances.shape
    if query_identities.shape != (query_count,) or query_cameras.shape != (query_count,):
        raise ValueError("query identities/cameras must have shape (num_query,)")
    if gallery_identities.shape != (gallery_count,) or gallery_cameras.shape != (gallery_count,):
        raise ValueError("gallery identities/cameras must have shape (num_gallery,)")
    if max_rank < 1:
        raise ValueError(f"max_rank must be >= 1, got {max_rank}")

    cmc_sum = np.zeros(max_rank, dtype=np.float64)
    average_precisions: list[float] = []
    for query_index in range(query_count):
        order = np.argsort(distances[query_index], kind="stable")
        same_identity = gallery_identities[order] == query_identities[query_index]
        same_camera = gallery_cameras[order] == query_cameras[query_index]
        matches = same_identity[~(same_identity & same_camera)]
        if not matches.any():
            continue
        first_hit = int(np.argmax(matches))
        if first_hit < max_rank:
            cmc_sum[first_hit:] += 1.0
        hit_positions = np.flatnonzero(matches)
        precision_at_hits = np.arange(1, hit_positions.size + 1) / (hit_positions + 1.0)
        average_precisions.append(float(precision_at_hits.mean()))

    valid_query_count = len(average_precisions)
    if valid_query_count == 0:
        raise ValueError("no query has a correct match in the gallery after removal")
    if valid_query_count < query_count:
        logger.debug(
            "%d of %d queries have no valid match", query_count - valid_query_count, query_count
        )
    return RetrievalMetrics(
        cmc=cmc_sum / valid_query_count,
        mean_average_precision=float(np.mean(average_precisions)),
        valid_query_count=valid_query_count,
    )


def evaluate_embeddings(
    query_embeddings: np.ndarray,
    query_identities: np.ndarray,
    query_cameras: np.ndarray,
    gallery_embeddings: np.ndarray,
    gallery_identities: np.ndarray,
    gallery_cameras: np.ndarray,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    max_rank: int = 10,
) -> RetrievalMetrics:
    """Convenience: :func:`pairwise_distances` followed by :func:`evaluate_retrieval`.

    Embeddings are float ``(num_query, D)`` and ``(num_gallery, D)``.
    """
    distances = pairwise_distances(query_embeddings, gallery_embeddings, metric)
    return evaluate_retrieval(
        distances, query_identities, gallery_identities, query_cameras, gallery_cameras, max_rank
    )
