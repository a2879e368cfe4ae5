"""Identity state kept in Redis between runs: read it back at start, or clear it (``--fresh``).

The publisher writes one hash per identity (see ``pipeline/publish.py``) and the highest global
id ever given under ``<prefix>:max_global_id``; a restarted crosscam reads them so global ids and
the gallery survive restarts, and new identities never reuse an old id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import redis

from pipeline.config import RedisConfig
from pipeline.identity.matching import Identity, IdentityMatcher
from pipeline.redaction import redact_url

logger = logging.getLogger(__name__)


def load_identities(client: Any, prefix: str) -> tuple[list[Identity], int]:
    """Read every stored identity and the highest global id ever given.

    Returns:
        ``(identities, max_global_id)``; track spans are not restored (track ids are per run).
    """
    identities = []
    for raw_id in client.zrange(f"{prefix}:identities", 0, -1):
        fields = client.hgetall(f"{prefix}:identity:{as_text(raw_id)}")
        if not fields:
            continue
        fields = {as_text(key): value for key, value in fields.items()}
        feature = np.frombuffer(fields["embedding"], dtype="<f4").astype(np.float32)
        last_seen_by_camera = {
            int(key.split(":", 1)[1]): float(as_text(value))
            for key, value in fields.items()
            if key.startswith("last_seen:")
        }
        identities.append(
            Identity(
                global_id=int(as_text(fields["global_id"])),
                feature=feature,
                weight=float(as_text(fields.get("weight", b"1.0"))),
                first_seen=float(as_text(fields["first_seen"])),
                last_seen=float(as_text(fields["last_seen"])),
                last_seen_by_camera=last_seen_by_camera,
            )
        )
    stored_max = client.get(f"{prefix}:max_global_id")
    max_global_id = max(
        [int(as_text(stored_max)) if stored_max else 0]
        + [identity.global_id for identity in identities]
    )
    return identities, max_global_id


def restore_gallery(
    url: str,
    config: RedisConfig,
    matcher: IdentityMatcher,
    should_stop: Callable[[], bool] | None = None,
    retry_seconds: float = 1.0,
) -> bool:
    """Continue the gallery stored in Redis, or clear it when restoring is off (``--fresh``).

    Waits for Redis (one warning, then a retry every ``retry_seconds``) instead of starting
    with an empty gallery: a run that could not read the stored identities would give their ids
    to new people and overwrite their hashes. Returns False when ``should_stop`` ended the wait
    before Redis answered (nothing may be matched then).
    """
    prefix = config.key_prefix
    warned = False
    while True:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        try:
            if config.restore_identities:
                identities, max_global_id = load_identities(client, prefix)
                matcher.restore(identities, max_global_id)
                if identities:
                    logger.info("continuing %d identities stored in Redis", len(identities))
            else:
                clear_identities(client, prefix)
            if warned:
                logger.info("Redis at %s answers; stored gallery read", redact_url(url))
            return True
        except redis.RedisError as error:
            if not warned:
                logger.warning(
                    "Redis at %s unreachable (%s): waiting for it before matching (the "
                    "stored identities must be read first; retrying every %g s)",
                    redact_url(url),
                    error.__class__.__name__,
                    retry_seconds,
                )
                warned = True
        finally:
            client.close()
        deadline = time.monotonic() + retry_seconds
        while time.monotonic() < deadline:
            if should_stop is not None and should_stop():
                return False
            time.sleep(0.05)


def clear_identities(client: Any, prefix: str) -> int:
    """Delete the stored gallery (identities, tracks, id counter); the event stream is kept.

    Returns the number of identities deleted.
    """
    keys = [as_text(key) for key in client.scan_iter(match=f"{prefix}:identity:*", count=1000)]
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.delete(f"{prefix}:identities", f"{prefix}:tracks", f"{prefix}:max_global_id")
    logger.info("--fresh: deleted %d stored identities", len(keys))
    return len(keys)


def as_text(value: bytes | str) -> str:
    """A Redis reply (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else value
