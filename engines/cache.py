"""Where exported models and built engines are kept, and the checksums that name them.

Everything ``engines`` writes (ONNX files, TensorRT engines, timing and calibration caches,
exported detectors) goes under :func:`default_cache_dir`, never next to the source weights in
``assets/``. Files are written atomically so that a crash never leaves half an engine behind
under its final name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CACHE_DIRECTORY_VARIABLE = "CROSSCAM_CACHE_DIR"
"""Environment variable that overrides the cache folder."""


def default_cache_dir() -> Path:
    """``$CROSSCAM_CACHE_DIR``, else ``~/.cache/crosscam`` (``$XDG_CACHE_HOME`` honoured)."""
    override = os.environ.get(CACHE_DIRECTORY_VARIABLE)
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "crosscam"


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as stream:
        while chunk := stream.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def write_bytes_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary sibling and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary_path = path.with_name(f"{path.name}.partial-{os.getpid()}")
    temporary_path.write_bytes(data)
    os.replace(temporary_path, path)
