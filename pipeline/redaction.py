"""Keep credentials out of logs, metrics and events."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit


def redact_url(uri: str) -> str:
    """Replace the user and password of a URL with ``***``; other text is returned as is.

    >>> redact_url("rtsp://admin:secret@10.0.0.5:554/stream")
    'rtsp://***@10.0.0.5:554/stream'
    """
    if "://" not in uri:
        return uri
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
