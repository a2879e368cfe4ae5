"""Matcher throughput: how many clip messages per second one ``--role matcher`` handles.

    python -m benchmarks.matcher [--clips 5000] [--cameras 8] [--people 200] [--repeats 3]

Fills the clip stream of an embedded Redis with synthetic edge messages (track start, clips
with embeddings drawn around per-person centres, track end), then times one
:class:`DistributedMatcher` draining it. Two matchers run side by side on the same messages,
alternating ``--repeats`` times (the median counts): ``cached`` (the shipped one, similarities
from the cached gallery matrix, one product per round) and ``uncached`` (the same matcher,
``cached=False``: reference similarities that stack every identity's vectors per call).
Prints and saves JSON + markdown under ``benchmarks/results/<machine>/matcher.*``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import redis
from rich.console import Console
from rich.progress import track

from pipeline.clip_messages import clip_message, ended_message, started_message
from pipeline.clips import Clip, TrackEvent
from pipeline.config import CrosscamConfig
from pipeline.matcher_role import DistributedMatcher
from pipeline.matching import EmbeddedClip, IdentityMatcher
from pipeline.redis_server import EmbeddedRedis

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("uncached", "cached")


def synthetic_messages(
    clips: int, cameras: int, people: int, clips_per_track: int = 3, seed: int = 0
) -> list[dict[str, str]]:
    """Stream fields of edge messages: tracks of ``people`` persons moving across cameras."""
    generator = np.random.default_rng(seed)
    centres = generator.normal(size=(people, 512)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    messages: list[dict[str, str]] = []
    track_id = 0
    now = 0.0
    while sum(1 for message in messages if message["kind"] == "clip") < clips:
        track_id += 1
        camera = int(generator.integers(cameras))
        person = int(generator.integers(people))
        box = np.array([10, 20, 60, 160], dtype=np.float32)
        start = TrackEvent(camera, track_id, int(now * 10), now, box, 0.9, time.monotonic())
        messages.append(started_message("bench", start).to_fields())
        for index in range(clips_per_track):
            noise = generator.normal(size=512).astype(np.float32)
            embedding = centres[person] + 0.025 * noise  # same person: cosine about 0.75
            embedding /= np.linalg.norm(embedding)
            final = index == clips_per_track - 1
            clip = Clip(
                camera, track_id, np.zeros((0, 1, 1, 3), np.uint8), np.zeros(0, np.int64),
                0.8, final, now, now + index + 1, int(now * 10), box, time.monotonic(),
            )  # fmt: skip
            messages.append(clip_message("bench", EmbeddedClip(clip, embedding)).to_fields())
        end = TrackEvent(camera, track_id, int(now * 10), now + clips_per_track, box, 0.9, 0.0)
        messages.append(ended_message("bench", end, has_final_clip=True).to_fields())
        now += 0.5
    return messages


def measure(messages: list[dict[str, str]], variant: str) -> dict[str, float]:
    """Drain ``messages`` with one matcher of ``variant``; its counts and seconds."""
    with tempfile.TemporaryDirectory() as directory, EmbeddedRedis(Path(directory)) as server:
        config = CrosscamConfig()
        config.redis.url = server.url
        config.outputs.run_directory = Path(directory) / "runs"
        client = redis.Redis.from_url(server.url)
        pipe = client.pipeline(transaction=False)
        for fields in messages:
            pipe.xadd(config.redis.clip_stream, fields)  # type: ignore[arg-type]
        pipe.execute()
        matcher = DistributedMatcher(config, server.url, "bench", "bench")
        if variant == "uncached":
            matcher.identity.matcher = IdentityMatcher(config.matching, cached=False)
        started = time.perf_counter()
        counters = matcher.run(idle_exit_seconds=1.0)
        seconds = time.perf_counter() - started - 1.0  # the idle wait is not work
        client.close()
        return {
            "messages": counters.messages,
            "clips": counters.clips,
            "identities_found": len(matcher.identity.matcher.identities),
            "seconds": seconds,
            "matching_seconds": matcher.identity.match_seconds_total,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.matcher", description=__doc__)
    parser.add_argument("--clips", type=int, default=5000)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args(argv)
    console = Console()
    messages = synthetic_messages(arguments.clips, arguments.cameras, arguments.people)
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in VARIANTS}
    for repeat in track(range(arguments.repeats), description="uncached / cached, alternating"):
        for variant in VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]:
            runs[variant].append(measure(messages, variant))
    variants: dict[str, dict[str, float | list[float]]] = {}
    rates: dict[str, float] = {}
    matching: dict[str, float] = {}
    for variant, measured in runs.items():
        seconds = statistics.median(run["seconds"] for run in measured)
        clips, count = measured[0]["clips"], measured[0]["messages"]
        rates[variant] = clips / seconds
        matching[variant] = statistics.median(run["matching_seconds"] for run in measured)
        variants[variant] = {
            "identities_found": measured[0]["identities_found"],
            "seconds": round(seconds, 3),
            "seconds_each": [round(run["seconds"], 3) for run in measured],
            "matching_seconds": round(matching[variant], 3),
            "clips_per_second": round(clips / seconds, 1),
            "messages_per_second": round(count / seconds, 1),
        }
    cached = variants["cached"]
    result = {
        "machine": f"{platform.node()} ({platform.processor() or platform.machine()})",
        "messages": runs["cached"][0]["messages"],
        "clips": runs["cached"][0]["clips"],
        "cameras": arguments.cameras,
        "people": arguments.people,
        "repeats": arguments.repeats,
        "identities_found": cached["identities_found"],
        "seconds": cached["seconds"],
        "clips_per_second": cached["clips_per_second"],
        "messages_per_second": cached["messages_per_second"],
        "variants": variants,
        "speedup_cached_over_uncached": round(rates["cached"] / rates["uncached"], 2),
        "matching_speedup_cached_over_uncached": round(
            matching["uncached"] / matching["cached"], 2
        ),
    }
    console.print(result)
    output = RESULTS / platform.node()
    output.mkdir(parents=True, exist_ok=True)
    (output / "matcher.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "".join(
        f"| {variant} | {result['clips']} | {result['messages']} | {arguments.cameras} | "
        f"{arguments.people} | {measured['identities_found']} | {measured['clips_per_second']} | "
        f"{measured['messages_per_second']} |\n"
        for variant, measured in variants.items()
    )
    (output / "matcher.md").write_text(
        "| matcher | clips | messages | cameras | people | identities found | clips/s "
        "| messages/s |\n|---|---|---|---|---|---|---|---|\n" + rows + f"\nMedian of "
        f"{arguments.repeats} alternating runs; cached / uncached: "
        f"{result['speedup_cached_over_uncached']}x end to end (Redis included), "
        f"{result['matching_speedup_cached_over_uncached']}x in the identity service alone "
        f"({matching['uncached']:.3f} s -> {matching['cached']:.3f} s).\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
