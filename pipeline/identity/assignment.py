"""Batch assignment helpers: clips of one track split into rounds, and Hungarian assignment
with forbidden pairs (scipy's ``linear_sum_assignment``)."""

from __future__ import annotations

from typing import Protocol, TypeVar

import numpy as np
from scipy.optimize import linear_sum_assignment


class HasTrackKey(Protocol):
    @property
    def key(self) -> tuple[int, int]: ...


Keyed = TypeVar("Keyed", bound=HasTrackKey)


def rounds_by_track(items: list[Keyed]) -> list[list[Keyed]]:
    """Split a batch so each track appears at most once per round, in arrival order (a batch
    can hold several clips of one track; the first decides its identity, later ones refine)."""
    rounds: list[list[Keyed]] = []
    seen_in: dict[tuple[int, int], int] = {}
    for item in items:
        index = seen_in.get(item.key, -1) + 1
        seen_in[item.key] = index
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(item)
    return rounds


def assignment(cost: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian assignment on a cost matrix where ``inf`` means forbidden."""
    finite = np.isfinite(cost)
    if not finite.any():
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    padded = np.where(finite, cost, cost[finite].max() + 1e6)
    rows, columns = linear_sum_assignment(padded)
    keep = finite[rows, columns]
    return rows[keep], columns[keep]
