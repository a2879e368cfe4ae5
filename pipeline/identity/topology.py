"""Learn camera-pair transition windows from the identities a run published.

    python -m pipeline.identity.topology --redis-url redis://localhost:6379/0 --out topology.yaml

For every identity seen in two cameras, the time between leaving one camera and appearing in
the other (or the fact that it was visible in both at once) is collected from the event stream;
each camera pair gets a window from the observed gaps (widened by a margin) and an ``overlap``
flag when the views often see a person at the same time. The output is a YAML snippet for the
``matching`` section (``topology: [...]``).
"""

from __future__ import annotations

import argparse
import itertools
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import redis
import yaml
from rich.console import Console
from rich.table import Table

from pipeline.events import EventType, parse_fields

TIMED_EVENTS = {EventType.IDENTITY_ASSIGNED.value, EventType.TRACK_ENDED.value}


def presence_from_events(events: list[dict[str, Any]]) -> dict[int, dict[int, list[float]]]:
    """``global id -> camera -> [first seen, last seen]`` seconds, merges followed."""
    merged_into: dict[int, int] = {}
    for event in events:
        if event["type"] == EventType.IDENTITY_MERGED.value:
            for old in event.get("merged_ids", []):
                merged_into[old] = event["global_id"]

    def final(global_id: int) -> int:
        while global_id in merged_into:
            global_id = merged_into[global_id]
        return global_id

    presence: dict[int, dict[int, list[float]]] = defaultdict(dict)
    for event in events:
        if event["type"] not in TIMED_EVENTS or event["global_id"] < 0:
            continue
        span = presence[final(event["global_id"])].setdefault(
            event["camera_id"], [event["timestamp"], event["timestamp"]]
        )
        span[0] = min(span[0], event["timestamp"])
        span[1] = max(span[1], event["timestamp"])
    return presence


def learn_windows(
    presence: dict[int, dict[int, list[float]]],
    margin_fraction: float = 0.2,
    overlap_fraction: float = 0.3,
    min_observations: int = 2,
) -> list[dict[str, Any]]:
    """Transition windows (``TransitionWindow`` fields) per camera pair with enough evidence."""
    gaps: dict[tuple[int, int], list[float]] = defaultdict(list)
    overlaps: dict[tuple[int, int], int] = defaultdict(int)
    for cameras in presence.values():
        for first, second in itertools.combinations(sorted(cameras), 2):
            (start_a, end_a), (start_b, end_b) = cameras[first], cameras[second]
            if min(end_a, end_b) - max(start_a, start_b) > 0:
                overlaps[(first, second)] += 1
            else:
                gaps[(first, second)].append(max(start_b - end_a, start_a - end_b))
    windows = []
    for pair in sorted(set(gaps) | set(overlaps)):
        observed = gaps.get(pair, [])
        count = len(observed) + overlaps.get(pair, 0)
        if count < min_observations:
            continue
        low, high = (float(np.min(observed)), float(np.max(observed))) if observed else (0.0, 0.0)
        margin = margin_fraction * max(high - low, 1.0)
        windows.append(
            {
                "from_camera": pair[0],
                "to_camera": pair[1],
                "min_seconds": round(max(0.0, low - margin), 2),
                "max_seconds": round(high + margin, 2),
                "overlap": overlaps.get(pair, 0) >= overlap_fraction * count,
                "symmetric": True,
            }
        )
    return windows


def read_events(url: str, stream: str) -> list[dict[str, Any]]:
    client: Any = redis.Redis.from_url(url, decode_responses=True)
    return [parse_fields(fields) for _, fields in client.xrange(stream)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.identity.topology", description=__doc__
    )
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--stream", default="crosscam:events")
    parser.add_argument("--out", type=Path, default=None, help="write the YAML snippet here")
    parser.add_argument("--min-observations", type=int, default=2)
    arguments = parser.parse_args(argv)
    console = Console()
    try:
        events = read_events(arguments.redis_url, arguments.stream)
    except redis.RedisError as error:
        console.print(f"[red]error:[/red] Redis at {arguments.redis_url}: {error}")
        return 2
    windows = learn_windows(
        presence_from_events(events), min_observations=arguments.min_observations
    )
    table = Table(title=f"transition windows from {len(events)} events")
    for column in ("cameras", "min s", "max s", "overlap"):
        table.add_column(column)
    for window in windows:
        table.add_row(
            f"{window['from_camera']} <-> {window['to_camera']}",
            str(window["min_seconds"]),
            str(window["max_seconds"]),
            str(window["overlap"]),
        )
    console.print(table)
    snippet = yaml.safe_dump({"matching": {"topology": windows}}, sort_keys=False)
    if arguments.out is not None:
        arguments.out.write_text(snippet)
        console.print(f"wrote {arguments.out}; merge its 'matching' section into your config")
    else:
        console.print(snippet, highlight=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
