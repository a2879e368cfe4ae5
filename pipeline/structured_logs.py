"""Log output for operators: one JSON object per line (``run.py --log-format json``).

Fields: ``time`` (ISO 8601, UTC, milliseconds), ``level``, ``logger``, ``message``, plus
``exception`` when there is one. Credentials in URLs are redacted by
:class:`pipeline.redaction.RedactingFilter` on the handler, whatever the format.
"""

from __future__ import annotations

import json
import logging
import time


class JsonFormatter(logging.Formatter):
    """Formats a record as a single-line JSON object."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        entry: dict[str, str] = {
            "time": f"{seconds}.{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)
