"""Follow crosscam's event stream with a consumer group and print identities as they appear.

    python examples/follow_events.py --redis-url redis://localhost:6379/0

Several copies with the same --group share the work; each event is acknowledged after it was
handled, and ``event_id`` is used to drop the duplicates that at-least-once delivery allows.
"""

from __future__ import annotations

import argparse
import socket
from typing import Any

import redis


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis-url", default="redis://localhost:6379/0")
    parser.add_argument("--stream", default="crosscam:events")
    parser.add_argument("--group", default="printers")
    parser.add_argument("--from-start", action="store_true", help="also read past events")
    arguments = parser.parse_args()
    client: Any = redis.Redis.from_url(arguments.redis_url, decode_responses=True)
    try:
        start = "0" if arguments.from_start else "$"
        client.xgroup_create(arguments.stream, arguments.group, id=start, mkstream=True)
    except redis.ResponseError as error:  # the group exists already
        if "BUSYGROUP" not in str(error):
            raise
    consumer = socket.gethostname()
    seen: set[str] = set()
    while True:
        reply = client.xreadgroup(
            arguments.group, consumer, {arguments.stream: ">"}, count=100, block=5000
        )
        for _stream, entries in reply or []:
            for entry_id, event in entries:
                if event["event_id"] not in seen:
                    seen.add(event["event_id"])
                    print(
                        f"{event['type']:<18} camera {event['camera_id']} "
                        f"track {event['track_id']:>4} -> identity {event['global_id']}"
                    )
                client.xack(arguments.stream, arguments.group, entry_id)


if __name__ == "__main__":
    main()
