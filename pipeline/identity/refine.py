"""Identities decided over whole tracks: geometry, continuity and appearance, one global pass.

The clip matcher decides each track's identity from its first clip. This pass revisits every
track of a window (a whole file replay, or the recent minutes of a live run) with what only
hindsight gives, in three stages of decreasing certainty:

1. **Same place at the same time.** For every pair of cameras whose views overlap, the
   ground-plane homography is learned from the footage (:mod:`.homography`). Two tracks of such
   cameras that coexist are the same person when one's feet, carried into the other view, stay
   on the other's feet (median transfer error within ``match_heights`` person heights) and each
   is the other's nearest track most of the time; they are *different* people (a cannot-link)
   when the feet stay far apart (beyond ``conflict_heights``).
2. **Same camera, picked up again.** A track that starts shortly after another ended in the same
   camera (within ``continuity_seconds``), near where it ended (``continuity_heights`` box
   heights), continues it unless their appearance disagrees (below the negative median).
3. **Appearance.** Constrained average-linkage clustering of what remains, on cosine
   similarities of per-camera-centred embeddings (the camera's mean embedding removed, which
   spreads the narrow band of non-negative features), up to a threshold derived from the run:
   the value that best separates the run's own positives (stage 1 pairs) from its negatives
   (cannot-link pairs), or a high quantile of the negatives when there are too few positives.
   Greedy merging can strand a piece in the cluster it joined first; local moves then put
   each group of pieces stages 1 and 2 joined where it adds most to the same objective
   (``identity.move_pieces``), and the clusters merge again.

Cannot-links are hard throughout: two tracks of one camera seen at the same time, and tracks of
overlapping views seen at the same time far apart, never end in one identity.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from pipeline.config import IdentityConfig
from pipeline.identity.encounters import (
    common_frame_iou,
    encounter_cuts,
    find_encounters,
)
from pipeline.identity.gallery import TrackKey
from pipeline.identity.homography import ViewHomography, learn_view_homography
from pipeline.identity.swaps import cut_records, swap_times
from pipeline.identity.track_log import PieceKey, TrackLog, TrackRecord
from pipeline.identity.trajectories import PairSamples, Trajectory


@dataclass
class Refinement:
    """The outcome of one pass.

    Attributes:
        clusters: the track keys of each identity (every logged usable track in exactly one).
        homographies: learned view homographies by ``(from camera, to camera)``, both ways.
        threshold: the appearance merge threshold used.
        geometric_links / continuity_links / appearance_merges: how many of each stage.
        cannot_links: hard negative pairs.
    """

    clusters: list[list[PieceKey]]
    homographies: dict[tuple[int, int], ViewHomography]
    threshold: float
    pieces: dict[PieceKey, TrackRecord] = field(default_factory=dict)
    geometric_links: int = 0
    continuity_links: int = 0
    appearance_merges: int = 0
    cannot_links: int = 0
    swap_cuts: int = 0
    encounter_cuts: int = 0
    unseen_joins: int = 0
    piece_moves: int = 0

    def counts(self) -> dict[str, int | float]:
        """What the pass found and did, for logs and reports."""
        return {
            "clusters": len(self.clusters),
            "swap_cuts": self.swap_cuts,
            "encounter_cuts": self.encounter_cuts,
            "geometric_links": self.geometric_links,
            "continuity_links": self.continuity_links,
            "appearance_merges": self.appearance_merges,
            "unseen_joins": self.unseen_joins,
            "piece_moves": self.piece_moves,
            "threshold": round(self.threshold, 4),
        }

    def identity_of(self) -> dict[PieceKey, int]:
        """Piece key → cluster index."""
        return {key: index for index, keys in enumerate(self.clusters) for key in keys}

    def track_identity_of(self) -> dict[TrackKey, int]:
        """Track key → cluster index of its first piece."""
        found: dict[TrackKey, int] = {}
        for key, index in sorted(self.identity_of().items()):
            found.setdefault((key[0], key[1]), index)
        return found

    def lookup(self, global_ids: dict[PieceKey, int]) -> Callable[[int, int, int], int]:
        """``(camera, track, frame) -> global id`` (``-1``: none) from :meth:`global_ids`."""
        starts: dict[TrackKey, list[tuple[int, int]]] = {}
        for (camera, track, first), global_id in sorted(global_ids.items()):
            starts.setdefault((camera, track), []).append((first, global_id))

        def global_id_of(camera: int, track: int, frame: int) -> int:
            pieces = starts.get((camera, track))
            if not pieces:
                return -1
            position = bisect_right(pieces, (frame, np.iinfo(np.int64).max)) - 1
            return pieces[max(position, 0)][1]

        return global_id_of

    def global_ids(self, online_id_of: Callable[[int, int], int]) -> dict[PieceKey, int]:
        """Track key → global id: each cluster keeps the online identity most of its boxes
        had (each online id serves one cluster), the others get ids after the highest online
        one. Clusters without any embedded track (never matched online either) get none."""
        highest = max(
            (online_id_of(key[0], key[1]) for keys in self.clusters for key in keys), default=0
        )
        votes: list[tuple[int, int, int]] = []
        for index, keys in enumerate(self.clusters):
            counts: dict[int, int] = {}
            for key in keys:
                online = online_id_of(key[0], key[1])
                if online >= 0:
                    counts[online] = counts.get(online, 0) + len(self.pieces[key].timestamps)
            votes.extend((-count, index, online) for online, count in counts.items())
        chosen: dict[int, int] = {}
        taken: set[int] = set()
        for _, index, online in sorted(votes):
            if index not in chosen and online not in taken:
                chosen[index], taken = online, taken | {online}
        next_id = max(highest, 0) + 1
        result: dict[PieceKey, int] = {}
        for index, keys in enumerate(self.clusters):
            if index not in chosen:
                if not any(self.pieces[key].embeddings for key in keys):
                    continue
                chosen[index], next_id = next_id, next_id + 1
            result.update((key, chosen[index]) for key in keys)
        return result


def centred_embeddings(records: Sequence[TrackRecord], center: bool) -> np.ndarray:
    """float32 ``(N, D)`` unit track embeddings (zeros for tracks without clips), each camera's
    mean embedding removed first when ``center``."""
    means = [record.mean_embedding() for record in records]
    dimension = next((mean.shape[0] for mean in means if mean is not None), 1)
    embeddings = np.zeros((len(records), dimension), dtype=np.float64)
    has = np.zeros(len(records), dtype=bool)
    for row, mean in enumerate(means):
        if mean is not None:
            embeddings[row], has[row] = mean, True
    if center:
        cameras = np.array([record.camera_id for record in records])
        for camera in np.unique(cameras):
            rows = (cameras == camera) & has
            if rows.sum() >= 2:
                embeddings[rows] -= embeddings[rows].mean(axis=0)
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)


def decision_threshold(
    positives: np.ndarray, negatives: np.ndarray, settings: IdentityConfig
) -> float:
    """The equal-error similarity of normal distributions fitted to the run's positives and
    negatives: as many of their standard deviations above the negatives' mean as below the
    positives' (a fit, not the empirical best split: with tens of positives that split
    jumps by a tenth between two halves of one recording). A quantile of the negatives when
    positives are too few; 1.0 (merge nothing) with neither."""
    if settings.threshold is not None:
        return settings.threshold
    if len(negatives) == 0:
        return 1.0
    if len(positives) < settings.min_positives:
        return float(np.quantile(negatives, settings.negative_quantile))
    positive_mean, negative_mean = float(np.mean(positives)), float(np.mean(negatives))
    positive_spread = max(float(np.std(positives)), 1e-6)
    negative_spread = max(float(np.std(negatives)), 1e-6)
    if positive_mean <= negative_mean:
        return float(np.quantile(negatives, settings.negative_quantile))
    return (negative_mean * positive_spread + positive_mean * negative_spread) / (
        positive_spread + negative_spread
    )


class _Clusters:
    """Union of tracks into clusters with cannot-links between clusters."""

    def __init__(self, count: int, cannot: np.ndarray) -> None:
        self.parent = list(range(count))
        self.members: dict[int, list[int]] = {index: [index] for index in range(count)}
        self.cannot = cannot.copy()
        """bool ``(N, N)`` between cluster roots (rows of non-roots are stale)."""

    def root(self, index: int) -> int:
        while self.parent[index] != index:
            self.parent[index] = self.parent[self.parent[index]]
            index = self.parent[index]
        return index

    def can_join(self, first: int, second: int) -> bool:
        a, b = self.root(first), self.root(second)
        return a != b and not self.cannot[a, b]

    def join(self, first: int, second: int) -> int:
        """Merge the clusters of two tracks; returns the new root."""
        a, b = self.root(first), self.root(second)
        if len(self.members[a]) < len(self.members[b]):
            a, b = b, a
        self.parent[b] = a
        self.members[a].extend(self.members.pop(b))
        self.cannot[a] |= self.cannot[b]
        self.cannot[:, a] = self.cannot[a]
        return a


def learn_homographies(
    records: Sequence[TrackRecord],
    trajectories: Sequence[Trajectory],
    embeddings: np.ndarray,
    settings: IdentityConfig,
    known: dict[tuple[int, int], ViewHomography] | None = None,
) -> dict[tuple[int, int], ViewHomography]:
    """View homographies of every camera pair whose views overlap, both directions: ``known``
    ones as given, the others learned from the tracks (``embeddings``: rows of ``records``,
    zero rows for tracks without clips). Pairs missing from the result do not overlap."""
    views = dict(known or {})
    cameras = np.array([record.camera_id for record in records])
    camera_ids = np.unique(cameras).tolist()
    for first_camera in camera_ids:
        for second_camera in camera_ids:
            if second_camera <= first_camera:
                continue
            if (first_camera, second_camera) in views or (second_camera, first_camera) in views:
                view = views.get((first_camera, second_camera))
                if view is None:
                    view = views[(second_camera, first_camera)].inverse()
            elif not settings.learn_geometry:
                continue
            else:
                rows = np.flatnonzero((cameras == first_camera) | (cameras == second_camera))
                appearance = {
                    records[row].key: embeddings[row]
                    for row in rows.tolist()
                    if records[row].embeddings
                }
                view = learn_view_homography(
                    [trajectories[row] for row in np.flatnonzero(cameras == first_camera).tolist()],
                    [
                        trajectories[row]
                        for row in np.flatnonzero(cameras == second_camera).tolist()
                    ],
                    appearance,
                    settings.homography,
                )
            if view is None:
                continue
            views[(first_camera, second_camera)] = view
            views[(second_camera, first_camera)] = view.inverse()
    return views


def refine_identities(
    log: TrackLog,
    settings: IdentityConfig | None = None,
    homographies: dict[tuple[int, int], ViewHomography] | None = None,
) -> Refinement:
    """One global pass over every usable track of ``log`` (see the module docstring).

    ``homographies`` given (a user's calibration, or learned earlier): used for those camera
    pairs instead of learning them.
    """
    settings = settings or IdentityConfig()
    records = log.usable(settings.min_boxes, need_embedding=False)
    if not records:
        return Refinement([], {}, 1.0)
    trajectories = [record.trajectory() for record in records]
    embeddings = centred_embeddings(records, settings.center_cameras)
    views = learn_homographies(records, trajectories, embeddings, settings, homographies)
    cuts = swap_times(records, trajectories, views, settings) if settings.cut_swaps else {}
    swap_count = sum(len(times) for times in cuts.values())
    encounters = find_encounters(records, settings.encounter_iou) if settings.cut_encounters else []
    for row, times in encounter_cuts(records, encounters).items():
        cuts.setdefault(row, []).extend(times)
    encounter_count = sum(len(times) for times in cuts.values()) - swap_count
    if cuts:
        records = cut_records(records, cuts)
        trajectories = [record.trajectory() for record in records]
        embeddings = centred_embeddings(records, settings.center_cameras)
    count = len(records)
    keys = [record.piece_key for record in records]
    has_embedding = np.array([bool(record.embeddings) for record in records])
    similarity = embeddings @ embeddings.T
    cameras = np.array([record.camera_id for record in records])
    starts = np.array([t.start for t in trajectories])
    ends = np.array([t.end for t in trajectories])
    overlap = np.minimum(ends[:, None], ends[None, :]) - np.maximum(starts[:, None], starts[None])

    cannot = same_camera_conflicts(records, overlap, settings)
    links: list[tuple[float, int, int]] = []
    for (first_camera, second_camera), view in views.items():
        if first_camera > second_camera:
            continue
        pair_links, pair_conflicts = _geometric_evidence(
            view,
            trajectories,
            np.flatnonzero(cameras == first_camera),
            np.flatnonzero(cameras == second_camera),
            settings,
        )
        links.extend(pair_links)
        for row, column in pair_conflicts:
            cannot[row, column] = cannot[column, row] = True

    clusters = _Clusters(count, cannot)
    positives: list[float] = []
    geometric = 0
    for _, row, column in sorted(links):
        if has_embedding[row] and has_embedding[column]:
            positives.append(float(similarity[row, column]))
        if clusters.can_join(row, column):
            clusters.join(row, column)
            geometric += 1
    both = has_embedding[:, None] & has_embedding[None, :]
    negatives = similarity[np.triu(cannot & both, 1)]
    threshold = decision_threshold(np.asarray(positives), negatives, settings)

    continuity = 0
    for row, column in continuity_pairs(records, trajectories, settings):
        # a piece after a swap cut joins its own track's earlier piece only on appearance
        same_track = records[column].cut_before and records[row].key == records[column].key
        embedded = has_embedding[row] and has_embedding[column]
        if same_track and not embedded:
            continue
        if embedded and similarity[row, column] < threshold:
            continue
        if clusters.can_join(row, column):
            clusters.join(row, column)
            continuity += 1

    clip_counts = np.array([len(record.embeddings) for record in records], dtype=np.float64)
    atoms = [list(members) for members in clusters.members.values()]
    merges = _average_linkage(clusters, similarity, clip_counts, threshold)
    moves = 0
    if settings.move_pieces:
        assignment = np.array([clusters.root(members[0]) for members in atoms])
        assignment, moves = _move_atoms(
            atoms, assignment, similarity, clip_counts, cannot, threshold
        )
        clusters = _Clusters(count, cannot)
        for label in np.unique(assignment).tolist():
            chosen = [
                members for members, given in zip(atoms, assignment, strict=True) if given == label
            ]
            for members in chosen:
                for index in members:
                    if index != chosen[0][0]:
                        clusters.join(chosen[0][0], index)
        merges += _average_linkage(clusters, similarity, clip_counts, threshold)
    unseen = _join_unseen_pieces(records, clusters, has_embedding)
    grouped = sorted(
        (sorted(keys[index] for index in members) for members in clusters.members.values()),
        key=lambda group: group[0],
    )
    return Refinement(
        grouped,
        views,
        threshold,
        pieces={record.piece_key: record for record in records},
        swap_cuts=swap_count,
        encounter_cuts=encounter_count,
        unseen_joins=unseen,
        piece_moves=moves,
        geometric_links=geometric,
        continuity_links=continuity,
        appearance_merges=merges,
        cannot_links=int(np.triu(cannot, 1).sum()),
    )


def same_camera_conflicts(
    records: Sequence[TrackRecord], overlap: np.ndarray, settings: IdentityConfig
) -> np.ndarray:
    """bool ``(N, N)``: tracks of one camera seen as two separate boxes in the same frames for
    longer than ``overlap_tolerance_seconds`` (``overlap``: seconds both tracks lasted). Two
    tracks whose common frames show one box twice (a duplicate track, or a tracker hand-over
    while the old track coasts) are not two people."""
    cameras = np.array([record.camera_id for record in records])
    tolerance = settings.overlap_tolerance_seconds
    candidate = (cameras[:, None] == cameras[None, :]) & (overlap > tolerance)
    cannot = np.zeros_like(candidate)
    for row, column in np.argwhere(np.triu(candidate, 1)).tolist():
        _, overlaps = common_frame_iou(records[row], records[column])
        timestamps = records[row].timestamps
        step = float(np.median(np.diff(timestamps))) if len(timestamps) > 1 else 0.0
        if np.sum(overlaps < settings.duplicate_iou) * step > tolerance:
            cannot[row, column] = cannot[column, row] = True
    return cannot


def _join_unseen_pieces(
    records: Sequence[TrackRecord], clusters: _Clusters, has_embedding: np.ndarray
) -> int:
    """A piece of a cut track left in a cluster without clips (nothing to compare it by)
    goes on as its track's neighbouring piece (the tracker's word), cannot-links permitting."""
    by_track: dict[TrackKey, list[int]] = {}
    for row, record in enumerate(records):
        by_track.setdefault(record.key, []).append(row)
    joined = 0
    for rows in by_track.values():
        if len(rows) < 2:
            continue
        rows.sort(key=lambda row: records[row].timestamps[0])
        for position, row in enumerate(rows):
            members = clusters.members[clusters.root(row)]
            if has_embedding[members].any():
                continue
            neighbours = rows[position - 1 : position] + rows[position + 1 : position + 2]
            for neighbour in neighbours:
                if clusters.can_join(row, neighbour):
                    clusters.join(row, neighbour)
                    joined += 1
                    break
    return joined


def _geometric_evidence(
    view: ViewHomography,
    trajectories: Sequence[Trajectory],
    first_rows: np.ndarray,
    second_rows: np.ndarray,
    settings: IdentityConfig,
) -> tuple[list[tuple[float, int, int]], list[tuple[int, int]]]:
    """Same-place links ``(error, row, column)`` and far-apart cannot-links between the tracks
    of two overlapping cameras (rows index ``trajectories``)."""
    starts = np.array([trajectory.start for trajectory in trajectories])
    ends = np.array([trajectory.end for trajectory in trajectories])
    coexisting = (starts[first_rows][:, None] < ends[second_rows][None]) & (
        ends[first_rows][:, None] > starts[second_rows][None]
    )
    first_at, second_at = np.nonzero(coexisting)
    pairs = list(zip(first_rows[first_at].tolist(), second_rows[second_at].tolist(), strict=True))
    forward, forward_hits = _nearest_hits(view.matrix, pairs, trajectories, settings)
    backward, backward_hits = _nearest_hits(
        view.inverse().matrix, [(column, row) for row, column in pairs], trajectories, settings
    )
    links: list[tuple[float, int, int]] = []
    conflicts: list[tuple[int, int]] = []
    for index, (row, column) in enumerate(pairs):
        error = forward[index]
        if not np.isfinite(error):
            continue
        hits = forward_hits[index]
        if np.isfinite(backward[index]):
            hits = min(hits, backward_hits[index])
        if error <= settings.match_heights and hits >= settings.nearest_fraction:
            links.append((float(error), row, column))
        elif error > settings.conflict_heights:
            conflicts.append((row, column))
    return links, conflicts


def _nearest_hits(
    matrix: np.ndarray,
    pairs: list[tuple[int, int]],
    trajectories: Sequence[Trajectory],
    settings: IdentityConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """For ``(source, target)`` row pairs of coexisting tracks: the median carried distance
    (``inf`` with fewer than ``min_common_samples`` common samples) and the fraction of the
    source's common timestamps at which this target was its nearest (among the targets with
    enough samples); both float64 ``(P,)``."""
    samples = PairSamples.build(pairs, trajectories, trajectories)
    distances = samples.distances(matrix)
    enough = samples.counts >= settings.min_common_samples
    errors = np.where(enough, samples.medians(distances), np.inf)
    hits = np.zeros(len(pairs))
    kept = enough[samples.owners]
    if not kept.any():
        return errors, hits
    owners, distances = samples.owners[kept], distances[kept]
    sources = np.array([source for source, _ in pairs])[owners]
    _, moment = np.unique(
        np.stack([sources.astype(np.float64), samples.times[kept]], axis=1),
        axis=0,
        return_inverse=True,
    )
    moment = moment.ravel()
    nearest = np.full(int(moment.max()) + 1, np.inf)
    np.minimum.at(nearest, moment, distances)
    nearest_count = np.bincount(
        owners, weights=(distances <= nearest[moment] + 1e-9), minlength=len(pairs)
    )
    hits = np.where(enough, nearest_count / np.maximum(samples.counts, 1), 0.0)
    return errors, hits


def continuity_pairs(
    records: Sequence[TrackRecord], trajectories: Sequence[Trajectory], settings: IdentityConfig
) -> list[tuple[int, int]]:
    """``(ended, started)`` row pairs of one camera where the started track picks up the
    ended one: it starts within ``continuity_seconds`` of the end, within
    ``continuity_heights`` of where it ended, and the pick-up is unambiguous (each is the
    other's only candidate within that radius: in a crowd, the nearest is not always right)."""
    cameras = np.array([record.camera_id for record in records])
    starts = np.array([trajectory.start for trajectory in trajectories])
    ends = np.array([trajectory.end for trajectory in trajectories])
    candidates: dict[int, list[int]] = {}
    for column in range(len(records)):
        ended = np.flatnonzero(
            (cameras == cameras[column])
            & (ends < starts[column] + settings.overlap_tolerance_seconds)
            & (starts[column] - ends <= settings.continuity_seconds)
        )
        near = [
            row
            for row in ended.tolist()
            if row != column
            and _pickup_distance(trajectories[row], trajectories[column])
            <= settings.continuity_heights
        ]
        if near:
            candidates[column] = near
    claimed: dict[int, int] = {}
    for near in candidates.values():
        for row in near:
            claimed[row] = claimed.get(row, 0) + 1
    return sorted(
        (rows[0], column)
        for column, rows in candidates.items()
        if len(rows) == 1
        and claimed[rows[0]] == 1
        and not _someone_else_near(trajectories, cameras, rows[0], column, settings)
    )


def _someone_else_near(
    trajectories: Sequence[Trajectory],
    cameras: np.ndarray,
    ended: int,
    started: int,
    settings: IdentityConfig,
) -> bool:
    """Whether another track of the camera was within ``continuity_heights`` of where
    ``started`` appeared, when it appeared (then it may be that person, not ``ended``'s)."""
    trajectory = trajectories[started]
    when, where = trajectory.start, trajectory.feet[0]
    scale = max(float(trajectory.heights[0]), 1.0)
    for row in np.flatnonzero(cameras == cameras[started]).tolist():
        other = trajectories[row]
        if row in (ended, started) or not other.start <= when <= other.end:
            continue
        position = np.searchsorted(other.timestamps, when).clip(0, len(other.timestamps) - 1)
        distance = float(np.linalg.norm(other.feet[position] - where)) / scale
        if distance <= settings.continuity_heights:
            return True
    return False


def _pickup_distance(ended: Trajectory, started: Trajectory) -> float:
    """Distance from where ``ended`` was last seen to where ``started`` was first seen, in the
    ended track's last box heights."""
    scale = max(float(ended.heights[-1]), 1.0)
    return float(np.linalg.norm(started.feet[0] - ended.feet[-1])) / scale


def _move_atoms(
    atoms: list[list[int]],
    assignment: np.ndarray,
    similarity: np.ndarray,
    weights: np.ndarray,
    cannot: np.ndarray,
    threshold: float,
    sweeps: int = 10,
) -> tuple[np.ndarray, int]:
    """Local moves after agglomerative clustering: each atom (the pieces geometry and
    continuity put together, never split) moves to the cluster, or a cluster of its own, where
    it adds most to ``sum over pairs in one cluster of w_i w_j (s_ij - threshold)`` (the
    objective whose sign average linkage follows when it merges), cannot-links permitting.
    Greedy merges can strand a piece in the wrong cluster (merged early, before its own
    person's cluster grew); a move takes it out, and the clusters may then merge.

    Args:
        atoms: piece indices of each atom.
        assignment: int ``(A,)`` cluster label of each atom.
        similarity: float ``(N, N)`` piece similarities; weights: ``(N,)`` clips per piece.
        cannot: bool ``(N, N)`` piece cannot-links.

    Returns:
        The new labels ``(A,)`` and the number of moves made.
    """
    count = len(atoms)
    membership = np.zeros((count, len(weights)))
    for row, members in enumerate(atoms):
        membership[row, members] = weights[members]
    atom_weights = membership.sum(axis=1)
    gain = membership @ similarity @ membership.T - threshold * np.outer(atom_weights, atom_weights)
    np.fill_diagonal(gain, 0.0)
    flags = np.zeros((count, len(weights)))
    for row, members in enumerate(atoms):
        flags[row, members] = 1.0
    blocked = (flags @ cannot.astype(np.float64) @ flags.T) > 0
    labels = np.unique(assignment, return_inverse=True)[1].ravel()
    moves = 0
    for _ in range(sweeps):
        moved = False
        for atom in np.flatnonzero(atom_weights > 0).tolist():
            clusters = labels.max() + 1
            onehot = np.zeros((count, clusters + 1))
            onehot[np.arange(count), labels] = 1.0
            onehot[atom, labels[atom]] = 0.0  # the atom itself
            totals = gain[atom] @ onehot
            forbidden = (blocked[atom].astype(np.float64) @ onehot) > 0
            totals[forbidden] = -np.inf
            totals[clusters] = 0.0  # a cluster of its own
            if onehot[:, labels[atom]].sum() == 0:
                totals[clusters] = -np.inf  # alone already: same as staying
            best = int(np.argmax(totals))
            if best != labels[atom] and totals[best] > totals[labels[atom]] + 1e-9:
                labels[atom] = best
                labels = np.unique(labels, return_inverse=True)[1].ravel()
                moves += 1
                moved = True
        if not moved:
            break
    return labels, moves


def _average_linkage(
    clusters: _Clusters, similarity: np.ndarray, weights: np.ndarray, threshold: float
) -> int:
    """Merge the most similar allowed pair of clusters while their linkage is at least
    ``threshold``; returns the number of merges. The linkage is the mean similarity over
    pairs of their pieces, each weighted by ``weights`` (its number of clips: a piece seen
    longer is better known)."""
    roots = sorted(clusters.members)
    size = len(roots)
    member_matrix = np.zeros((size, len(weights)))
    for position, root in enumerate(roots):
        members = clusters.members[root]
        member_matrix[position, members] = weights[members]
    totals = member_matrix @ similarity @ member_matrix.T
    counts = member_matrix.sum(axis=1)
    blocked = clusters.cannot[np.ix_(roots, roots)].copy()
    np.fill_diagonal(blocked, True)
    blocked[counts == 0] = True
    blocked[:, counts == 0] = True
    merges = 0
    while True:
        linkage = np.where(blocked, -np.inf, totals / np.maximum(np.outer(counts, counts), 1.0))
        best = int(np.argmax(linkage))
        first, second = divmod(best, size)
        if linkage[first, second] < threshold:
            return merges
        clusters.join(roots[first], roots[second])
        totals[first] += totals[second]
        totals[:, first] += totals[:, second]
        counts[first] += counts[second]
        blocked[first] |= blocked[second]
        blocked[:, first] = blocked[first]
        blocked[second, :] = True
        blocked[:, second] = True
        merges += 1
