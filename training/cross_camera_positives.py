"""Cross-camera pseudo-identities from the identity layer's geometry, without labels.

Mined pseudo-labels are one identity per camera track, so training never sees a person change
cameras. The pipeline's identity layer (``pipeline.identity.refine``) knows, for cameras whose
views overlap, when two tracks are the same person with high confidence: it learns the ground
homography between the views from the footage, and links tracks whose feet, carried into the
other view, stay on the other track's feet while each is the other's nearest (its stage 1,
"same place at the same time"). It also knows certain negatives: two tracks of one camera seen
at the same time, and tracks of overlapping views seen at the same time far apart; no cluster
holds such a pair.

Here that pass runs over the *training* tracklets of a mined index (boxes and timestamps, one
TP embedding per tracklet for the homography's appearance seeds) with its later, less certain
stages switched off (no same-camera continuity, no appearance merges), so only geometric links
join tracks. Every resulting cluster is one pseudo-identity; tracklets of clusters that span
two cameras are the cross-camera positives. No person label is read, except to report (for
the log only) how many clusters mix people.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from pipeline.config import IdentityConfig
from pipeline.identity import TrackLog, TrackRecord, refine_identities
from reid_models.datasets import Tracklet
from reid_models.mined_index import MinedTracklet
from reid_models.train import pretrained_tp_features
from reid_models.train_config import TrainConfig

logger = logging.getLogger(__name__)


def geometric_only_settings(base: IdentityConfig | None = None) -> IdentityConfig:
    """``base`` (default: the pipeline's defaults) with continuity and appearance merges off:
    a threshold of 1.0 never merges on appearance and blocks continuity links between embedded
    tracks; zero continuity time and distance leave none to propose."""
    settings = base or IdentityConfig()
    return settings.model_copy(
        update={"threshold": 1.0, "continuity_seconds": 0.0, "continuity_heights": 0.0}
    )


def track_log_of(tracklets: Sequence[MinedTracklet], embeddings: np.ndarray) -> TrackLog:
    """A :class:`TrackLog` of mined tracklets: each camera track's boxes in time order, and
    each tracklet's embedding as one clip centred on its middle frame.

    Args:
        tracklets: mined tracklets (several segments of one track are joined).
        embeddings: float ``(len(tracklets), D)`` L2-normalised, one per tracklet.
    """
    log = TrackLog()
    by_track: dict[tuple[int, int], list[int]] = {}
    for row, tracklet in enumerate(tracklets):
        by_track.setdefault((tracklet.camera, tracklet.track), []).append(row)
    for (camera, track), rows in sorted(by_track.items()):
        record = TrackRecord(camera, track)
        boxes = sorted(
            (frame, timestamp, tuple(box), confidence)
            for row in rows
            for frame, timestamp, box, confidence in zip(
                tracklets[row].frames,
                tracklets[row].timestamps,
                tracklets[row].boxes,
                tracklets[row].confidences,
                strict=True,
            )
        )
        for frame, timestamp, box, confidence in boxes:
            record.frame_indices.append(int(frame))
            record.timestamps.append(float(timestamp))
            record.boxes.append(np.asarray(box, dtype=np.float32))
            record.confidences.append(float(confidence))
        log.records[(camera, track)] = record
        for row in sorted(rows, key=lambda row: tracklets[row].frames[0]):
            frames = tracklets[row].frames
            log.add_embedding(camera, track, embeddings[row], 1.0, int(frames[len(frames) // 2]))
    return log


@dataclass(frozen=True)
class CrossCameraGroups:
    """Pseudo-identities of mined tracklets joined by geometric links.

    Attributes:
        groups: group number of each tracklet (rows of the tracklets given).
        cross_camera_groups: groups that hold tracklets of more than one camera.
        geometric_links: links the pass made (between tracks or pieces of them).
        cannot_links: certain-negative pairs of tracks the pass knew of.
        homography_pairs: camera pairs ``(first, second)``, ``first < second``, whose views it
            found to overlap.
    """

    groups: list[int]
    cross_camera_groups: int
    geometric_links: int
    cannot_links: int
    homography_pairs: list[tuple[int, int]]


def cross_camera_groups(
    tracklets: Sequence[MinedTracklet],
    embeddings: np.ndarray,
    settings: IdentityConfig | None = None,
) -> CrossCameraGroups:
    """Group mined tracklets by the identity layer's geometric links (see the module docstring).

    Args:
        tracklets: the training tracklets of a mined index.
        embeddings: float ``(len(tracklets), D)`` L2-normalised appearance, one per tracklet
            (only seeds the homography search; appearance never joins two tracks here).
        settings: the identity layer's settings before :func:`geometric_only_settings`.
    """
    refinement = refine_identities(
        track_log_of(tracklets, embeddings), geometric_only_settings(settings)
    )
    lookup = refinement.lookup(refinement.identity_of())
    groups: list[int] = []
    next_group = len(refinement.clusters)
    for tracklet in tracklets:
        middle = tracklet.frames[len(tracklet.frames) // 2]
        group = lookup(tracklet.camera, tracklet.track, middle)
        if group < 0:
            group, next_group = next_group, next_group + 1
        groups.append(group)
    cameras: dict[int, set[int]] = {}
    for group, tracklet in zip(groups, tracklets, strict=True):
        cameras.setdefault(group, set()).add(tracklet.camera)
    return CrossCameraGroups(
        groups=groups,
        cross_camera_groups=sum(len(seen) > 1 for seen in cameras.values()),
        geometric_links=refinement.geometric_links,
        cannot_links=refinement.cannot_links,
        homography_pairs=sorted(pair for pair in refinement.homographies if pair[0] < pair[1]),
    )


def mixed_groups(groups: Sequence[int], tracklets: Sequence[MinedTracklet]) -> int:
    """Diagnostic from ground-truth labels, never used for training: how many groups hold
    tracklets of more than one labelled person."""
    persons: dict[int, set[str]] = {}
    for group, tracklet in zip(groups, tracklets, strict=True):
        if tracklet.person is not None:
            persons.setdefault(group, set()).add(tracklet.person)
    return sum(len(labels) > 1 for labels in persons.values())


def geometric_tracklets(
    config: TrainConfig, records: Sequence[MinedTracklet], tracklets: Sequence[Tracklet]
) -> list[Tracklet]:
    """Relabel mined tracklets with the identity layer's geometric cross-camera groups (the
    ``cross_camera`` relabelling that :func:`reid_models.train.training_tracklets` is given)."""
    found = cross_camera_groups(records, pretrained_tp_features(config, tracklets))
    logger.info(
        "geometric positives: %d tracks -> %d pseudo-identities, %d across cameras "
        "(%d links, %d cannot-links, overlapping views %s); diagnostic from the GT labels, "
        "never used for training: %d groups hold more than one person",
        len({(record.camera, record.track) for record in records}),
        len(set(found.groups)),
        found.cross_camera_groups,
        found.geometric_links,
        found.cannot_links,
        found.homography_pairs,
        mixed_groups(found.groups, records),
    )
    return [
        Tracklet(tracklet.image_paths, group, tracklet.camera)
        for tracklet, group in zip(tracklets, found.groups, strict=True)
    ]
