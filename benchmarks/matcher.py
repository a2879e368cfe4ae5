"""Matcher throughput: how many clip messages per second one ``--role matcher`` handles.

    python -m benchmarks.matcher [--clips 5000] [--cameras 8] [--people 200] [--repeats 3]
        [--variants off,on,calibrated] [--walks-per-second 1.0] [--machine NAME] [--tag TAG]

Fills the clip stream of an embedded Redis with synthetic edge messages (people walking on
ground planes seen by overlapping camera pairs through a known homography, with the tracked
boxes edges send: ``benchmarks/matcher_scene.py``), then times one :class:`DistributedMatcher`
draining it. The variants run on the same messages, alternating ``--repeats`` times (the
median counts): ``off`` (whole-track passes off: ``identity.refine_every_seconds=0``, no
end-of-run pass), ``on`` (the shipped defaults: a pass over the last ``window_seconds`` every
``identity.refine_every_seconds`` of footage, in the background worker process, the next one
handed over once the last was reconciled; geometry learned; the end-of-run pass when the
matcher stops), ``calibrated`` (``on`` given the true homographies of the overlapping pairs in
a calibration file, ``identity.learn_geometry=false``) and, when asked for, ``every``
(``on`` with the passes inline, one every ``refine_every_seconds`` of footage: what a pass
costs a matcher that waits for it). The worker process is started before timing, as a
running matcher's is. Clips/s are reported with and without the end-of-run pass
(the drain alone: what a running matcher sustains). (The reference matcher that stacks every
identity's vectors per call, once a variant here, is ``tests/reference_matcher.py``.) Prints
and saves JSON + markdown under ``benchmarks/results/<machine>/matcher[-<tag>].*``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
from rich.console import Console
from rich.progress import track

from benchmarks.matcher_scene import (
    SceneSettings,
    SyntheticStream,
    pair_scores,
    synthetic_messages,
    true_views,
)
from pipeline.config import CrosscamConfig
from pipeline.events import EventType
from pipeline.identity import save_calibration
from pipeline.matcher_role import DistributedMatcher
from pipeline.redis_server import EmbeddedRedis

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS = ("off", "on", "calibrated", "every")


def measure(stream: SyntheticStream, variant: str) -> dict[str, float]:
    """Drain the stream's messages with one matcher of ``variant``; its counts, seconds and
    pair precision / recall of its final identities."""
    with tempfile.TemporaryDirectory() as directory, EmbeddedRedis(Path(directory)) as server:
        config = CrosscamConfig()
        config.redis.url = server.url
        config.outputs.run_directory = Path(directory) / "runs"
        if variant == "off":
            config.identity.refine_every_seconds = 0.0
            config.identity.refine_at_end = False
        if variant == "every":
            config.identity.passes_in_background = False
        if variant == "calibrated":
            config.identity.calibration = Path(directory) / "calibration.yaml"
            config.identity.learn_geometry = False
            save_calibration(config.identity.calibration, true_views(stream.cameras), [])
        client = redis.Redis.from_url(server.url, decode_responses=True)
        pipe = client.pipeline(transaction=False)
        for fields in stream.messages:
            pipe.xadd(config.redis.clip_stream, fields)  # type: ignore[arg-type]
        pipe.execute()
        matcher = DistributedMatcher(
            config, server.url, "bench", "bench", defer_passes_when_behind=variant != "every"
        )
        matcher.passes.warm_up()  # a running matcher's worker is up before its first pass
        started = time.perf_counter()
        counters = matcher.run(idle_exit_seconds=1.0)
        seconds = time.perf_counter() - started - 1.0  # the idle wait is not work
        entries: list[tuple[str, dict[str, str]]] = client.xrange(config.redis.stream)  # type: ignore[assignment]
        kinds = [fields["type"] for _, fields in entries]
        client.close()
        passes = matcher.passes
        online = matcher.identity.matcher
        found = {key: online.global_id_of(*key) for key in stream.person_of_track}
        precision, recall = pair_scores(stream.person_of_track, found)
        return {
            "pair_precision": precision,
            "pair_recall": recall,
            "messages": counters.messages,
            "clips": counters.clips,
            "identities_found": len(matcher.identity.matcher.identities),
            "seconds": seconds,
            "matching_seconds": matcher.identity.match_seconds_total,
            "passes": counters.passes,
            "pass_seconds": passes.seconds_total,
            "final_pass_seconds": passes.final_seconds,
            "merged_events": kinds.count(EventType.IDENTITY_MERGED.value),
            "split_events": kinds.count(EventType.IDENTITY_SPLIT.value),
            "boxes": passes.boxes_logged,
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.matcher", description=__doc__)
    parser.add_argument("--clips", type=int, default=5000)
    parser.add_argument("--cameras", type=int, default=8)
    parser.add_argument("--people", type=int, default=200)
    parser.add_argument("--walks-per-second", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--variants", default="off,on,calibrated", help=f"comma-separated: {VARIANTS}"
    )
    parser.add_argument("--machine", default=platform.node(), help="results folder name")
    parser.add_argument("--tag", default="", help="results in matcher-<tag>.* (else matcher.*)")
    arguments = parser.parse_args(argv)
    chosen = [variant for variant in VARIANTS if variant in arguments.variants.split(",")]
    console = Console()
    scene = SceneSettings(arguments.cameras, arguments.people, arguments.walks_per_second)
    stream = synthetic_messages(arguments.clips, scene)
    runs: dict[str, list[dict[str, float]]] = {variant: [] for variant in chosen}
    for repeat in track(range(arguments.repeats), description=" / ".join(chosen)):
        for variant in chosen if repeat % 2 == 0 else chosen[::-1]:
            runs[variant].append(measure(stream, variant))
    variants = {variant: summarise(measured) for variant, measured in runs.items()}
    first = runs[chosen[0]][0]
    result = {
        "machine": f"{arguments.machine}: {platform.node()} "
        f"({platform.processor() or platform.machine()})",
        "command": " ".join(["python -m benchmarks.matcher", *(argv or sys.argv[1:])]),
        "messages": first["messages"],
        "clips": first["clips"],
        "boxes": max(run["boxes"] for measured in runs.values() for run in measured),
        "footage_seconds": round(max(float(f["timestamp"]) for f in stream.messages), 1),
        "people_seen": len(set(stream.person_of_track.values())),
        "cameras": arguments.cameras,
        "people": arguments.people,
        "repeats": arguments.repeats,
        "variants": variants,
    }
    console.print(result)
    output = RESULTS / arguments.machine
    output.mkdir(parents=True, exist_ok=True)
    name = f"matcher-{arguments.tag}" if arguments.tag else "matcher"
    (output / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (output / f"{name}.md").write_text(markdown(result))
    return 0


def summarise(measured: list[dict[str, float]]) -> dict[str, float | list[float]]:
    """Medians over repeats of one variant's runs."""
    seconds = statistics.median(run["seconds"] for run in measured)
    first = measured[0]
    return {
        "identities_found": first["identities_found"],
        "seconds": round(seconds, 3),
        "seconds_each": [round(run["seconds"], 3) for run in measured],
        "drain_clips_per_second": round(
            first["clips"]
            / statistics.median(run["seconds"] - run["final_pass_seconds"] for run in measured),
            1,
        ),
        "matching_seconds": round(statistics.median(r["matching_seconds"] for r in measured), 3),
        "clips_per_second": round(first["clips"] / seconds, 1),
        "messages_per_second": round(first["messages"] / seconds, 1),
        "passes": first["passes"],
        "pass_seconds": round(statistics.median(r["pass_seconds"] for r in measured), 3),
        "final_pass_seconds": round(
            statistics.median(r["final_pass_seconds"] for r in measured), 3
        ),
        "merged_events": first["merged_events"],
        "split_events": first["split_events"],
        "pair_precision": round(first["pair_precision"], 3),
        "pair_recall": round(first["pair_recall"], 3),
    }


def markdown(result: dict) -> str:
    """The results table with what the passes cost."""
    header = (
        "| matcher | clips | messages | identities found | clips/s draining | clips/s with the "
        "end pass | messages/s | passes | s in passes (each) | s in the end pass "
        "| merges / splits | pair precision / recall |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = ""
    for variant, measured in result["variants"].items():
        each = measured["pass_seconds"] / max(measured["passes"], 1)
        rows += (
            f"| {variant} | {result['clips']} | {result['messages']} | "
            f"{measured['identities_found']} | {measured['drain_clips_per_second']} | "
            f"{measured['clips_per_second']} | "
            f"{measured['messages_per_second']} | {measured['passes']} | "
            f"{measured['pass_seconds']} ({each:.2f}) | {measured['final_pass_seconds']} | "
            f"{measured['merged_events']} / {measured['split_events']} | "
            f"{measured['pair_precision']} / {measured['pair_recall']} |\n"
        )
    return (
        f"Machine: {result['machine']}. `{result['command']}`: {result['cameras']} cameras "
        f"(overlapping pairs), {result['people_seen']} of {result['people']} people walking, "
        f"{result['footage_seconds']} s of "
        f"footage, {result['boxes']} tracked boxes on the stream; median of "
        f"{result['repeats']} alternating runs (Redis included).\n\n" + header + rows
    )


if __name__ == "__main__":
    raise SystemExit(main())
