"""Live config reload (``kill -HUP`` or ``--watch-config``): re-read the streams YAML and
work out what changes.

Only cameras change live: removed cameras stop (their clips are flushed and published), added
ones start, changed ones restart. Every other section is read by components built once at
start (models, Redis, metrics server), so a change there gives one warning that a restart is
needed and is otherwise ignored. A file that does not load gives one error line naming the file
and the problem, and the running config stays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from pipeline.config import CameraConfig, ConfigError, CrosscamConfig, load_config
from pipeline.records import FrameDetections

logger = logging.getLogger(__name__)

LIVE_SECTIONS = frozenset({"cameras"})
"""Top-level config keys applied without a restart."""


@dataclass
class ReloadPlan:
    """What a reload changes: camera ids to stop, cameras to start, and restart-only keys."""

    removed: list[int] = field(default_factory=list)
    added: list[CameraConfig] = field(default_factory=list)
    changed: list[CameraConfig] = field(default_factory=list)
    restart_needed: list[str] = field(default_factory=list)
    """Top-level keys (``detector``, ``matching``, …) that differ but only apply on restart."""

    @property
    def empty(self) -> bool:
        """True when no camera changes (restart-only keys may still differ)."""
        return not (self.removed or self.added or self.changed)


def plan_reload(current: CrosscamConfig, new: CrosscamConfig) -> ReloadPlan:
    """Compare two loaded configs (paths resolved, secrets expanded) camera by camera id."""
    plan = ReloadPlan()
    running = {camera.id: camera for camera in current.cameras}
    wanted = {camera.id: camera for camera in new.cameras}
    plan.removed = [camera_id for camera_id in running if camera_id not in wanted]
    for camera_id, camera in wanted.items():
        if camera_id not in running:
            plan.added.append(camera)
        elif camera.model_dump() != running[camera_id].model_dump():
            plan.changed.append(camera)
    current_values = current.model_dump()
    new_values = new.model_dump()
    plan.restart_needed = [
        key
        for key in CrosscamConfig.model_fields
        if key not in LIVE_SECTIONS and current_values[key] != new_values[key]
    ]
    return plan


class ConfigReloader:
    """Loads the streams YAML again the way it was loaded at start (same ``--set`` overrides,
    then ``prepare``, which applies the other command-line flags)."""

    def __init__(
        self,
        path: Path,
        overrides: list[str] | None = None,
        prepare: Callable[[CrosscamConfig], None] | None = None,
    ) -> None:
        self.path = path
        self.overrides = list(overrides or [])
        self.prepare = prepare

    def load(self) -> CrosscamConfig | None:
        """The new config, or None after one error line when the file does not load."""
        try:
            config = load_config(self.path, self.overrides, require_cameras=True)
        except ConfigError as error:
            message = str(error)
            if str(self.path) not in message:
                message = f"{self.path}: {message}"
            logger.error("config reload failed, keeping the running config: %s", message)
            return None
        if self.prepare is not None:
            self.prepare(config)
        return config


class TrackerLike(Protocol):
    """The stateful-stage shape of a tracker: ``update(detections) -> detections``, ``reset``."""

    def update(self, frame_detections: FrameDetections) -> FrameDetections: ...

    def reset(self) -> None: ...


class ContinuingTracker:
    """A fresh tracker for a restarted camera whose track ids continue after the old ones.

    Track ids key identities as (camera id, track id); a new tracker counts from the start
    again, so its ids are shifted by ``id_offset`` to never reuse an id of the same camera. The
    wrapped tracker keeps its own ids unique over :meth:`reset` (as
    :class:`pipeline.track.CameraTracker` does), so the shifted ones stay unique too.
    """

    def __init__(self, tracker: TrackerLike, id_offset: int) -> None:
        self.tracker = tracker
        self.id_offset = id_offset

    def update(self, frame_detections: FrameDetections) -> FrameDetections:
        tracked = self.tracker.update(frame_detections)
        detections = tracked.detections
        if detections.tracker_id is not None and len(detections):
            detections.tracker_id = detections.tracker_id + self.id_offset
        return tracked

    def reset(self) -> None:
        self.tracker.reset()


class ConfigWatcher:
    """``--watch-config``: polls the config file's modification time on a daemon thread and
    calls ``on_change`` (e.g. :meth:`Pipeline.request_reload`) when it changes.

    Polling, not inotify: it works the same on bind mounts, NFS and in containers, and an
    editor that replaces the file (new inode) is seen too.
    """

    def __init__(
        self, path: Path, on_change: Callable[[], None], interval_seconds: float = 2.0
    ) -> None:
        self.path = path
        self.on_change = on_change
        self.interval_seconds = interval_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-watcher", daemon=True)
        self._signature = self._read_signature()

    def start(self) -> ConfigWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval_seconds + 1.0)

    def _read_signature(self) -> tuple[int, int, int] | None:
        try:
            status = self.path.stat()
        except OSError:
            return None  # being replaced; the next poll sees the new file
        return (status.st_mtime_ns, status.st_size, status.st_ino)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_seconds):
            signature = self._read_signature()
            if signature is not None and signature != self._signature:
                self._signature = signature
                logger.info("%s changed: reloading the config", self.path)
                self.on_change()
