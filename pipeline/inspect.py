"""``python run.py inspect``: print the identities and latest events a run published."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import redis
from rich.console import Console
from rich.table import Table

from pipeline.config import PROJECT_ROOT
from pipeline.events import parse_fields
from pipeline.redis_server import EmbeddedRedis


def inspect_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="run.py inspect", description=__doc__)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--runs",
        type=Path,
        default=PROJECT_ROOT / "runs",
        help="outputs.run_directory of the runs (default <project>/runs)",
    )
    source.add_argument("--redis-url", default=None)
    parser.add_argument("--events", type=int, default=15, help="latest events to show")
    parser.add_argument("--stream", default="crosscam:events")
    parser.add_argument("--prefix", default="crosscam")
    arguments = parser.parse_args(argv)
    console = Console()
    embedded = None
    url = arguments.redis_url
    if url is None:
        data = arguments.runs / "redis"
        if not data.is_dir():
            console.print(f"[red]error:[/red] no embedded Redis data in {data} (pass --runs)")
            return 2
        embedded = EmbeddedRedis(data).start()
        url = embedded.url
    try:
        client = redis.Redis.from_url(url, decode_responses=False)
        console.print(identities_table(client, arguments.prefix))
        console.print(events_table(client, arguments.stream, arguments.events))
    except redis.RedisError as error:
        console.print(f"[red]error:[/red] Redis at {url}: {error}")
        return 2
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def identities_table(client: Any, prefix: str) -> Table:
    table = Table(title="identities")
    for column in ("global id", "cameras", "tracks", "first seen s", "last seen s"):
        table.add_column(column)
    for raw_id in client.zrange(f"{prefix}:identities", 0, -1):
        fields = {
            key.decode(): value
            for key, value in client.hgetall(f"{prefix}:identity:{raw_id.decode()}").items()
        }
        if not fields:
            continue
        table.add_row(
            fields["global_id"].decode(),
            fields["cameras"].decode(),
            fields["tracks"].decode(),
            fields["first_seen"].decode(),
            fields["last_seen"].decode(),
        )
    return table


def events_table(client: Any, stream: str, count: int) -> Table:
    total = client.xlen(stream)
    table = Table(title=f"latest {count} of {total} events in {stream}")
    for column in ("type", "camera", "track", "global id", "frame", "time s", "score"):
        table.add_column(column)
    entries = client.xrevrange(stream, count=count)
    for _entry_id, raw in reversed(entries):
        event = parse_fields({key.decode(): value.decode() for key, value in raw.items()})
        table.add_row(
            str(event["type"]),
            str(event["camera_id"]),
            str(event["track_id"]),
            str(event["global_id"]),
            str(event["frame_index"]),
            f"{event['timestamp']:.2f}",
            f"{event['score']:.3f}",
        )
    return table
