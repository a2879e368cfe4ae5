"""Scale-out: two edge processes and matchers against one real Redis."""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from pipeline.events import EventType, parse_fields
from pipeline.redis_server import EmbeddedRedis
from tests.conftest import REPOSITORY_ROOT
from tests.test_end_to_end import terrace_camera, write_config

SEGMENT = (12.0, 24.0)


def crosscam(*arguments: str) -> list[str]:
    return [sys.executable, "run.py", "--quiet", *arguments]


def identity_of_tracks(url: str) -> dict[tuple[int, int], int]:
    """(camera, track) -> final global id, following identity_merged events."""
    client = redis.Redis.from_url(url, decode_responses=True)
    assigned: dict[tuple[int, int], int] = {}
    merged_into: dict[int, int] = {}
    for _, fields in client.xrange("crosscam:events"):
        event = parse_fields(fields)
        if event["type"] == EventType.IDENTITY_ASSIGNED:
            assigned[(event["camera_id"], event["track_id"])] = event["global_id"]  # type: ignore[index]
        elif event["type"] == EventType.IDENTITY_MERGED:
            for old in event["merged_ids"]:  # type: ignore[attr-defined]
                merged_into[old] = event["global_id"]  # type: ignore[assignment]

    def final(global_id: int) -> int:
        while global_id in merged_into:
            global_id = merged_into[global_id]
        return global_id

    return {key: final(global_id) for key, global_id in assigned.items()}


def pair_agreement(first: dict[tuple[int, int], int], second: dict[tuple[int, int], int]) -> float:
    """Fraction of track pairs that both runs put together, or both apart (Rand index)."""
    keys = sorted(set(first) & set(second))
    pairs = list(itertools.combinations(keys, 2))
    agree = sum((first[a] == first[b]) == (second[a] == second[b]) for a, b in pairs)
    return agree / max(len(pairs), 1)


@pytest.fixture(scope="module")
def edges_output(tmp_path_factory: pytest.TempPathFactory):
    """Run two edges (one camera each) into one Redis; keep the filled clip stream."""
    directory = tmp_path_factory.mktemp("edges")
    server = EmbeddedRedis(directory / "redis").start()
    processes = []
    for camera_id in (0, 1):
        edge_directory = directory / f"edge{camera_id}"
        edge_directory.mkdir()
        config = write_config(edge_directory, [terrace_camera(camera_id, *SEGMENT)])
        processes.append(
            subprocess.Popen(
                crosscam("--streams", str(config), "--role", "edge", "--name", f"e{camera_id}")
                + ["--redis-url", server.url],
                cwd=REPOSITORY_ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for process in processes:
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
    yield server, directory
    server.stop()


def copy_stream(source_url: str, target_url: str, stream: str = "crosscam:clips") -> int:
    source = redis.Redis.from_url(source_url)
    target = redis.Redis.from_url(target_url)
    entries = source.xrange(stream)
    for _, fields in entries:
        target.xadd(stream, fields)
    return len(entries)


def run_matcher(url: str, name: str, idle_exit_seconds: float = 3.0) -> None:
    completed = subprocess.run(
        crosscam("--role", "matcher", "--redis-url", url, "--name", name)
        + ["--idle-exit-seconds", str(idle_exit_seconds)],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]


def test_two_edges_and_a_matcher_give_the_single_process_identities(
    edges_output: tuple[EmbeddedRedis, Path], tmp_path: Path
):
    edge_server, _ = edges_output
    sent = redis.Redis.from_url(edge_server.url).xrange("crosscam:clips")
    with_boxes = [fields for _, fields in sent if b"boxes" in fields]
    assert with_boxes and {fields[b"kind"] for fields in with_boxes} == {b"clip", b"ended"}
    with EmbeddedRedis(tmp_path / "distributed") as distributed:
        copied = copy_stream(edge_server.url, distributed.url)
        assert copied > 20
        run_matcher(distributed.url, "m1")
        distributed_identities = identity_of_tracks(distributed.url)
        pending = redis.Redis.from_url(distributed.url).xpending("crosscam:clips", "matchers")
        assert pending["pending"] == 0

    config = write_config(tmp_path, [terrace_camera(0, *SEGMENT), terrace_camera(1, *SEGMENT)])
    with EmbeddedRedis(tmp_path / "single") as single:
        completed = subprocess.run(
            # both run the whole-track passes: edges send the matcher every tracked box
            crosscam("--streams", str(config), "--redis-url", single.url),
            cwd=REPOSITORY_ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        single_identities = identity_of_tracks(single.url)

    # Same frames, same tracker, same encoder: the same tracks get identities in both modes.
    assert set(distributed_identities) == set(single_identities)
    # Batches differ (the matcher sees clips by arrival), so allow a few pair disagreements.
    assert pair_agreement(distributed_identities, single_identities) >= 0.9
    cameras = {}
    for (camera, _), global_id in distributed_identities.items():
        cameras.setdefault(global_id, set()).add(camera)
    assert any(len(seen) == 2 for seen in cameras.values())


def test_a_killed_matcher_loses_no_clip(edges_output: tuple[EmbeddedRedis, Path], tmp_path: Path):
    edge_server, _ = edges_output
    with EmbeddedRedis(tmp_path / "redis") as server:
        total = copy_stream(edge_server.url, server.url)
        client = redis.Redis.from_url(server.url)
        # A matcher that read half the clips and died before acknowledging them.
        client.xgroup_create("crosscam:clips", "matchers", id="0")
        read = client.xreadgroup("matchers", "dead", {"crosscam:clips": ">"}, count=total // 2)
        assert len(read[0][1]) == total // 2
        # A real matcher process killed with SIGKILL while it runs.
        process = subprocess.Popen(
            crosscam("--role", "matcher", "--redis-url", server.url, "--name", "doomed"),
            cwd=REPOSITORY_ROOT,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(6)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

        run_matcher(server.url, "survivor", idle_exit_seconds=3.0)
        assert client.xpending("crosscam:clips", "matchers")["pending"] == 0
        clip_tracks = {
            (int(fields[b"camera_id"]), int(fields[b"track_id"]))
            for _, fields in client.xrange("crosscam:clips")
            if fields[b"kind"] == b"clip"
        }
        assert set(identity_of_tracks(server.url)) == clip_tracks
