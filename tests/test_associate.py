"""Cross-camera association of pseudo-identities: mutual nearest neighbours, cannot-links."""

from __future__ import annotations

import numpy as np

from reid_models.associate import associate_identities


def _unit(*rows: list[float]) -> np.ndarray:
    array = np.array(rows, dtype=np.float64)
    return array / np.linalg.norm(array, axis=1, keepdims=True)


def test_mutual_nearest_neighbours_of_different_cameras_are_joined() -> None:
    embeddings = _unit([1, 0, 0], [0, 1, 0], [0.95, 0.05, 0], [0.05, 0.95, 0])
    groups = associate_identities(embeddings, [0, 0, 1, 1], set(), min_similarity=0.8)
    assert groups == [0, 1, 0, 1]


def test_same_camera_and_dissimilar_identities_stay_apart() -> None:
    embeddings = _unit([1, 0, 0], [0.99, 0.01, 0], [0, 0, 1])
    groups = associate_identities(embeddings, [0, 0, 1], set(), min_similarity=0.5)
    assert len(set(groups)) == 3


def test_only_mutual_pairs_join() -> None:
    # camera-1 identity 2 is the nearest of both camera-0 identities, but only 0 is its nearest
    embeddings = _unit([1, 0, 0], [0.8, 0.6, 0], [0.99, 0.1, 0])
    groups = associate_identities(embeddings, [0, 0, 1], set(), min_similarity=0.5)
    assert groups[0] == groups[2] != groups[1]


def test_cannot_link_blocks_a_chain_through_a_third_camera() -> None:
    # camera 0: identities 0 and 1 (they share a frame); camera 1: 2 looks like 0; camera 2:
    # 3 looks like 1; 2 and 3 look alike: the chain 0-2-3-1 would make 0 and 1 one person
    embeddings = _unit([1, 0, 0], [0, 1, 0], [0.8, 0.6, 0], [0.6, 0.8, 0])
    cameras = [0, 0, 1, 2]
    free = associate_identities(embeddings, cameras, set(), min_similarity=0.75)
    constrained = associate_identities(embeddings, cameras, {(0, 1)}, min_similarity=0.75)
    assert len(set(free)) == 1  # without the constraint the chain joins everyone
    assert constrained[0] != constrained[1]
    assert constrained[2] == constrained[3]
