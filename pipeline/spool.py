"""A bounded, append-only on-disk spool for events that could not reach Redis.

Records are JSON lines appended to ``spool.jsonl`` and fsync'd once per batch; a sidecar file
``spool.offset`` holds the byte offset of the first record not yet delivered (written
atomically). A process killed with SIGKILL loses nothing that was appended; on the next start
the records past the offset are replayed in order. When everything is delivered the files are
truncated. Past ``max_bytes`` the newest records are refused (and counted), so the disk never
fills up.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)


def undelivered_records(directory: Path) -> int:
    """How many complete records past the offset a spool folder holds, read without changing
    it (0 when it holds no spool)."""
    data_path = Path(directory) / "spool.jsonl"
    if not data_path.is_file():
        return 0
    try:
        offset = int((Path(directory) / "spool.offset").read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        offset = 0
    with data_path.open("rb") as handle:
        handle.seek(offset)
        return sum(1 for line in handle if line.endswith(b"\n"))


class DiskSpool:
    """``append(records)``, then ``peek(count)`` and ``acknowledge(records)`` in order."""

    def __init__(self, directory: Path, max_bytes: int = 512 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.data_path = self.directory / "spool.jsonl"
        self.offset_path = self.directory / "spool.offset"
        self.refused = 0
        self._offset = self._read_offset()
        self._repair_tail()
        self._pending = sum(1 for _ in self._records_from(self._offset))

    def __len__(self) -> int:
        """Records appended and not yet acknowledged."""
        return self._pending

    @property
    def size_bytes(self) -> int:
        return self.data_path.stat().st_size if self.data_path.exists() else 0

    def append(self, records: list[dict[str, str]]) -> int:
        """Append records durably (one fsync per call); returns how many were stored."""
        if not records:
            return 0
        lines = [json.dumps(record, separators=(",", ":")) + "\n" for record in records]
        room = self.max_bytes - self.size_bytes
        stored: list[str] = []
        for line in lines:
            room -= len(line.encode())
            if room < 0:
                break
            stored.append(line)
        if len(stored) < len(lines):
            self.refused += len(lines) - len(stored)
            logger.error(
                "event spool %s is full (%d bytes): %d events refused",
                self.data_path,
                self.max_bytes,
                len(lines) - len(stored),
            )
        if stored:
            with self.data_path.open("a", encoding="utf-8") as handle:
                handle.writelines(stored)
                handle.flush()
                os.fsync(handle.fileno())
        self._pending += len(stored)
        return len(stored)

    def peek(self, count: int) -> list[dict[str, str]]:
        """The oldest ``count`` undelivered records, without removing them."""
        records = []
        for _, record in self._records_from(self._offset):
            records.append(record)
            if len(records) >= count:
                break
        return records

    def acknowledge(self, count: int) -> None:
        """Mark the oldest ``count`` records as delivered."""
        offset = self._offset
        acknowledged = 0
        for end, _record in self._records_from(self._offset):
            if acknowledged >= count:
                break
            offset = end
            acknowledged += 1
        self._offset = offset
        self._pending -= acknowledged
        if self._pending == 0:
            self._truncate()
        else:
            self._write_offset(offset)

    def _records_from(self, offset: int) -> Iterator[tuple[int, dict[str, str]]]:
        """Yield ``(offset after the record, record)`` for complete lines past ``offset``."""
        if not self.data_path.exists():
            return
        with self.data_path.open("rb") as handle:
            handle.seek(offset)
            position = offset
            for line in handle:
                if not line.endswith(b"\n"):
                    return  # a torn final write: ignored, repaired at next start
                position += len(line)
                yield position, json.loads(line)

    def _repair_tail(self) -> None:
        """Drop a partial last line left by a crash in the middle of a write."""
        if not self.data_path.exists():
            return
        data = self.data_path.read_bytes()
        complete = data.rfind(b"\n") + 1
        if complete < len(data):
            with self.data_path.open("r+b") as handle:
                handle.truncate(complete)
            logger.warning("event spool: dropped a torn record at the end of %s", self.data_path)
        if self._offset > complete:
            self._offset = 0

    def _read_offset(self) -> int:
        try:
            return int(self.offset_path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def _write_offset(self, offset: int) -> None:
        temporary = self.offset_path.with_suffix(".tmp")
        temporary.write_text(str(offset))
        os.replace(temporary, self.offset_path)

    def _truncate(self) -> None:
        with self.data_path.open("w"):
            pass
        self._offset = 0
        self._write_offset(0)
