"""Cross-camera association of pseudo-identities, for label-free training.

Mined pseudo-labels are one identity per camera track, so training never sees the same person
in two cameras and learns nothing about camera changes. Following tracklet-association
learning (Li, Zhu and Gong, "Unsupervised Person Re-identification by Deep Learning Tracklet
Association", ECCV 2018), identities of different cameras are joined when they are *mutual*
nearest neighbours under the pretrained features and similar enough. A join is refused when it
would put two tracks of one camera that share a frame into one identity (two boxes in one
frame are two people).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class _Groups:
    """Union-find over identities that refuses joins breaking a cannot-link constraint."""

    def __init__(self, count: int, cannot_link: set[tuple[int, int]]) -> None:
        self.parent = list(range(count))
        self.members: dict[int, set[int]] = {index: {index} for index in range(count)}
        self.cannot_link = cannot_link

    def find(self, index: int) -> int:
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def join(self, first: int, second: int) -> bool:
        root_first, root_second = self.find(first), self.find(second)
        if root_first == root_second:
            return False
        for member in self.members[root_first]:
            for other in self.members[root_second]:
                if (min(member, other), max(member, other)) in self.cannot_link:
                    return False
        self.parent[root_second] = root_first
        self.members[root_first] |= self.members.pop(root_second)
        return True


def associate_identities(
    embeddings: np.ndarray,
    cameras: Sequence[int],
    cannot_link: set[tuple[int, int]],
    min_similarity: float,
) -> list[int]:
    """Group identities across cameras by mutual nearest neighbours.

    Args:
        embeddings: float ``(identities, D)``, one L2-normalised feature per identity.
        cameras: camera of each identity.
        cannot_link: ``(i, j)`` with ``i < j``: identities that must stay apart.
        min_similarity: lowest cosine similarity of a joined pair.

    Returns:
        group label of each identity, ``0 .. groups-1`` in order of first appearance.
    """
    features = np.asarray(embeddings, dtype=np.float64)
    camera_of = np.asarray(cameras)
    groups = _Groups(len(features), cannot_link)
    similarity = features @ features.T
    pairs: list[tuple[float, int, int]] = []
    for camera in np.unique(camera_of):
        for other_camera in np.unique(camera_of):
            if other_camera <= camera:
                continue
            rows = np.flatnonzero(camera_of == camera)
            columns = np.flatnonzero(camera_of == other_camera)
            block = similarity[np.ix_(rows, columns)]
            best_column = block.argmax(axis=1)
            best_row = block.argmax(axis=0)
            for row_position, column_position in enumerate(best_column):
                if best_row[column_position] != row_position:
                    continue
                value = float(block[row_position, column_position])
                if value >= min_similarity:
                    pairs.append((value, int(rows[row_position]), int(columns[column_position])))
    for _, first, second in sorted(pairs, reverse=True):
        groups.join(first, second)
    labels: dict[int, int] = {}
    return [labels.setdefault(groups.find(index), len(labels)) for index in range(len(features))]
