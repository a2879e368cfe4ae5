"""Keep credentials out of logs, metrics and events."""

from __future__ import annotations

import logging
import re
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


_CREDENTIALS_IN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/\s@]+@")


def redact_text(text: str) -> str:
    """Redact the credentials of every URL inside free text (a safety net for log lines).

    >>> redact_text("open rtsp://admin:secret@cam/1 failed; redis://:pw@db:6379/0 ok")
    'open rtsp://***@cam/1 failed; redis://***@db:6379/0 ok'
    """
    return _CREDENTIALS_IN_URL.sub(r"\g<scheme>***@", text)


class RedactingFilter(logging.Filter):
    """A logging filter that redacts URL credentials in every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = redact_text(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
