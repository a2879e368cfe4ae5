"""Hand-computed checks of the NumPy reference CMC/mAP (MARS/Market protocol)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from reid_models.evaluate_metrics import (
    evaluate_embeddings,
    evaluate_retrieval,
    pairwise_distances,
)

# Gallery used by several tests: (identity, camera) per column.
GALLERY_IDENTITIES = np.array([1, 2, 1, 3, 1])
GALLERY_CAMERAS = np.array([0, 1, 1, 1, 2])


def test_same_identity_same_camera_entries_are_removed() -> None:
    # Query: identity 1, camera 0. Gallery column 0 (identity 1, camera 0) is nearest but is
    # removed. Remaining ranking: col1 (id 2, miss), col2 (id 1, hit), col3 (miss), col4 (hit).
    # First hit at rank 2. AP = mean(1/2, 2/4) = 0.5.
    distances = np.array([[0.1, 0.2, 0.3, 0.4, 0.5]])
    metrics = evaluate_retrieval(
        distances, np.array([1]), GALLERY_IDENTITIES, np.array([0]), GALLERY_CAMERAS, max_rank=4
    )
    np.testing.assert_allclose(metrics.cmc, [0.0, 1.0, 1.0, 1.0])
    assert metrics.mean_average_precision == pytest.approx(0.5)
    assert metrics.valid_query_count == 1


def test_queries_without_valid_match_are_skipped_and_scores_averaged() -> None:
    # Query A: identity 1 camera 0 -> as above: rank-1 miss, AP 0.5.
    # Query B: identity 2 camera 1 -> its only gallery match (col1) is the same camera: skipped.
    # Query C: identity 3 camera 0 -> col3 nearest: rank-1 hit, AP 1.0.
    distances = np.array(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5],
            [0.5, 0.0, 0.1, 0.2, 0.3],
            [0.9, 0.8, 0.7, 0.1, 0.6],
        ]
    )
    metrics = evaluate_retrieval(
        distances,
        np.array([1, 2, 3]),
        GALLERY_IDENTITIES,
        np.array([0, 1, 0]),
        GALLERY_CAMERAS,
        max_rank=10,
    )
    assert metrics.valid_query_count == 2
    assert metrics.rank1 == pytest.approx(0.5)
    assert metrics.rank5 == pytest.approx(1.0)
    # Only 4 gallery entries remain for each query; the curve is extended with its last value.
    assert metrics.rank10 == pytest.approx(1.0)
    assert metrics.mean_average_precision == pytest.approx(0.75)


def test_average_precision_with_several_hits() -> None:
    # Query identity 7 camera 0; gallery in distance order: hit, miss, miss, hit, hit (all cam 1).
    # AP = (1/1 + 2/4 + 3/5) / 3 = 0.7.
    distances = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    metrics = evaluate_retrieval(
        distances,
        np.array([7]),
        np.array([7, 8, 9, 7, 7]),
        np.array([0]),
        np.array([1, 1, 1, 1, 1]),
        max_rank=3,
    )
    assert metrics.mean_average_precision == pytest.approx(0.7)
    np.testing.assert_allclose(metrics.cmc, [1.0, 1.0, 1.0])


def test_ties_are_broken_by_gallery_order() -> None:
    # Equal distances: the earlier gallery column ranks first. Miss first -> AP = 1/2.
    distances = np.array([[1.0, 1.0]])
    metrics = evaluate_retrieval(
        distances, np.array([1]), np.array([2, 1]), np.array([0]), np.array([1, 1]), max_rank=2
    )
    assert metrics.rank1 == 0.0
    assert metrics.mean_average_precision == pytest.approx(0.5)


def test_no_valid_query_raises() -> None:
    with pytest.raises(ValueError, match="no query"):
        evaluate_retrieval(
            np.zeros((1, 2)), np.array([1]), np.array([1, 2]), np.array([0]), np.array([0, 0])
        )


def test_rank_out_of_range_raises() -> None:
    metrics = evaluate_retrieval(
        np.zeros((1, 1)), np.array([1]), np.array([1]), np.array([0]), np.array([1]), max_rank=1
    )
    with pytest.raises(ValueError):
        metrics.rank(5)


def test_pairwise_distances_match_scipy() -> None:
    generator = np.random.default_rng(0)
    query = generator.normal(size=(4, 6))
    gallery = generator.normal(size=(7, 6))
    np.testing.assert_allclose(pairwise_distances(query, gallery), cdist(query, gallery), atol=1e-9)
    np.testing.assert_allclose(
        pairwise_distances(query, gallery, metric="cosine"),
        cdist(query, gallery, metric="cosine"),
        atol=1e-9,
    )


def test_evaluate_embeddings_perfect_separation() -> None:
    # Two identities on orthogonal axes, seen from two cameras: every query ranks its own
    # identity first, so rank-1 and mAP are 1.
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0]])
    metrics = evaluate_embeddings(
        embeddings,
        np.array([0, 1]),
        np.array([0, 0]),
        embeddings + 0.01,
        np.array([0, 1]),
        np.array([1, 1]),
        max_rank=2,
    )
    assert metrics.rank1 == 1.0
    assert metrics.mean_average_precision == 1.0
