"""The matcher's reference similarities, for checking the cached gallery matrix against.

Before the cached matrix (``pipeline/identity/gallery.py``), the matcher stacked every
identity's vectors on each call and took no batch snapshot. :class:`ReferenceMatcher` still
does; the tests compare its events and scores with the shipped matcher's.
"""

from __future__ import annotations

import numpy as np

from pipeline.identity.gallery import Identity, SimilaritySnapshot
from pipeline.identity.matching import EmbeddedClip, IdentityMatcher


def gallery_similarities(embeddings: np.ndarray, identities: list[Identity]) -> np.ndarray:
    """What :meth:`GalleryMatrix.similarities` computes, from the identities themselves.

    Args:
        embeddings: float32 ``(N, D)`` unit rows.
        identities: ``M`` identities.

    Returns:
        float64 ``(N, M)``: each row's best similarity to an identity's feature or prototypes.
    """
    vectors = [[identity.feature, *identity.prototypes] for identity in identities]
    starts = np.cumsum([0] + [len(group) for group in vectors[:-1]])
    matrix = np.stack([vector for group in vectors for vector in group])
    return np.maximum.reduceat(embeddings @ matrix.T, starts, axis=1).astype(np.float64)


class ReferenceMatcher(IdentityMatcher):
    """The matcher with reference similarities (stacked per call, no batch snapshot)."""

    def gallery_similarities(self, embeddings: np.ndarray) -> np.ndarray:
        return gallery_similarities(embeddings, list(self.identities.values()))

    def _snapshot(self, known: list[EmbeddedClip]) -> SimilaritySnapshot | None:
        return None
