"""Tracks cut where the tracker swapped people, found from an overlapping camera's view.

When two people pass close to each other, a per-camera tracker sometimes carries a track over
from one person to the other. One camera alone hardly tells; an overlapping camera can. Before
the swap the track's feet, carried through the learned homography, land on one track of the
other camera, after it on another one's, while the first partner is still there. Such a
parting, when the track had another person of its own camera close by (no swap without someone
to swap with), cuts the track in two pieces; each piece is then identified on its own
(:mod:`.refine`), and pieces of a track whose cut was needless join again there.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import numpy as np

from pipeline.config import IdentityConfig
from pipeline.identity.homography import ViewHomography
from pipeline.identity.track_log import TrackRecord
from pipeline.identity.trajectories import PairSamples, Trajectory, common_positions


def partners(
    matrix: np.ndarray,
    trajectories: Sequence[Trajectory],
    sources: Sequence[int],
    targets: Sequence[int],
    match_heights: float,
) -> dict[int, np.ndarray]:
    """Per source row: int ``(N,)``, at each of its ``N`` samples the target row whose feet
    are nearest to the source's carried by ``matrix`` (the first such target in ``targets``
    on a tie), if within ``match_heights`` target person heights; else ``-1``. Rows index
    ``trajectories``."""
    found = {row: np.full(len(trajectories[row].timestamps), -1) for row in sources}
    starts = np.array([trajectories[row].start for row in targets])
    ends = np.array([trajectories[row].end for row in targets])
    pairs = [
        (row, int(targets[position]))
        for row in sources
        for position in np.flatnonzero(
            (starts < trajectories[row].end) & (ends > trajectories[row].start)
        ).tolist()
    ]
    samples = PairSamples.build(pairs, trajectories, trajectories)
    if len(samples.owners) == 0:
        return found
    distances = samples.distances(matrix)
    pair_sources = np.array([source for source, _ in pairs])[samples.owners]
    pair_targets = np.array([target for _, target in pairs])[samples.owners]
    # per (source, sample): the smallest distance, then the earliest pair (targets' order)
    order = np.lexsort((samples.owners, distances, samples.indices, pair_sources))
    keys = np.stack([pair_sources[order], samples.indices[order]], axis=1)
    first = np.ones(len(order), dtype=bool)
    first[1:] = np.any(keys[1:] != keys[:-1], axis=1)
    for position in order[first][distances[order[first]] <= match_heights].tolist():
        found[int(pair_sources[position])][samples.indices[position]] = pair_targets[position]
    return found


def partner_runs(
    partner: np.ndarray, timestamps: np.ndarray, min_seconds: float
) -> list[tuple[int, int, int]]:
    """``(partner, first sample, last sample)`` runs lasting at least ``min_seconds``, with
    runs of one partner interrupted only by shorter runs or no partner joined."""
    runs: list[tuple[int, int, int]] = []
    start = 0
    for stop in range(1, len(partner) + 1):
        if stop < len(partner) and partner[stop] == partner[start]:
            continue
        value = int(partner[start])
        if value >= 0 and timestamps[stop - 1] - timestamps[start] >= min_seconds:
            if runs and runs[-1][0] == value:
                runs[-1] = (value, runs[-1][1], stop - 1)
            else:
                runs.append((value, start, stop - 1))
        start = stop
    return runs


def _crowded(
    trajectory: Trajectory,
    neighbours: Sequence[Trajectory],
    start: float,
    end: float,
    proximity_heights: float,
) -> bool:
    """Whether another track of the same camera came within ``proximity_heights`` of
    ``trajectory``'s feet between ``start`` and ``end`` seconds."""
    scale = trajectory.median_height
    for other in neighbours:
        if other.end < start or other.start > end or other.key == trajectory.key:
            continue
        times, feet, other_feet = common_positions(trajectory, other)
        inside = (times >= start) & (times <= end)
        if inside.any():
            distance = np.linalg.norm(feet[inside] - other_feet[inside], axis=1) / scale
            if float(distance.min()) <= proximity_heights:
                return True
    return False


def swap_times(
    records: Sequence[TrackRecord],
    trajectories: Sequence[Trajectory],
    views: dict[tuple[int, int], ViewHomography],
    settings: IdentityConfig,
) -> dict[int, list[float]]:
    """Cut times (seconds) per row of ``records``: where the track parted from its partner in
    an overlapping camera (module docstring)."""
    cameras = np.array([record.camera_id for record in records])
    cuts: dict[int, list[float]] = {}
    for (source_camera, target_camera), view in views.items():
        sources = np.flatnonzero(cameras == source_camera).tolist()
        targets = np.flatnonzero(cameras == target_camera).tolist()
        neighbours = [trajectories[row] for row in sources]
        found = partners(view.matrix, trajectories, sources, targets, settings.match_heights)
        for row in sources:
            trajectory = trajectories[row]
            partner = found[row]
            runs = partner_runs(partner, trajectory.timestamps, settings.swap_min_seconds)
            for (before, _, last), (after, first, _) in pairwise(runs):
                if before == after:
                    continue
                parted_at = float(trajectory.timestamps[first])
                ended_at = float(trajectory.timestamps[last])
                if trajectories[before].end < parted_at + settings.swap_min_seconds:
                    continue  # the partner ended: its person may go on in the new partner
                window = (
                    ended_at - settings.swap_min_seconds,
                    parted_at + settings.swap_min_seconds,
                )
                if not _crowded(trajectory, neighbours, *window, settings.swap_proximity_heights):
                    continue
                cuts.setdefault(row, []).append((ended_at + parted_at) / 2.0)
    return cuts


def cut_records(records: Sequence[TrackRecord], cuts: dict[int, list[float]]) -> list[TrackRecord]:
    """``records`` with each one that has cut times replaced by its pieces."""
    pieces: list[TrackRecord] = []
    for row, record in enumerate(records):
        times = sorted(set(cuts.get(row, [])))
        if not times:
            pieces.append(record)
            continue
        timestamps = np.asarray(record.timestamps)
        order = np.argsort(timestamps, kind="stable")
        if not np.array_equal(order, np.arange(len(order))):
            pieces.append(record)  # boxes out of time order: never cut
            continue
        bounds = [0, *np.searchsorted(timestamps, times, side="right").tolist(), len(timestamps)]
        bounds = sorted(set(bounds))
        for index, (start, stop) in enumerate(pairwise(bounds)):
            if stop > start:
                pieces.append(record.piece(start, stop, cut_before=index > 0))
    return pieces
