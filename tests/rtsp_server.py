"""Real RTSP cameras for tests: GStreamer's RTSP server fed by ffmpeg, all on 127.0.0.1.

``tests/gst_rtsp_server.py`` (system Python, python3-gi) serves ``rtsp://127.0.0.1:<port>/<name>``;
one ffmpeg per camera publishes a prepared H.264 segment of a bundled video, looped at its own
frame rate (``-re``), as RTP to the mount's UDP port. ``make rtsp-deps`` installs both.

Faults: :meth:`RtspServer.kill` / :meth:`RtspServer.restart` (server gone, then back on the same
port), :meth:`Publisher.pause` (SIGSTOP: the stream stalls but the RTSP session stays open),
:meth:`Publisher.replace` (another video, e.g. of another resolution, on the same mount).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("gst_rtsp_server.py")


def rtsp_available() -> bool:
    """True when ffmpeg and GStreamer's RTSP server (for the system Python) are installed."""
    if shutil.which("ffmpeg") is None or not Path(SYSTEM_PYTHON).is_file():
        return False
    probe = (
        "import gi; gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import GstRtspServer"
    )
    completed = subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True, timeout=30)
    return completed.returncode == 0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A TCP (or UDP, ``socket.SOCK_DGRAM``) port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def prepare_segment(
    video: Path,
    output: Path,
    start_seconds: float = 0.0,
    duration_seconds: float = 30.0,
    size: tuple[int, int] | None = None,
) -> Path:
    """Re-encode a segment for live publishing (kept if already there): H.264 with a keyframe
    every 10 frames and SPS/PPS in every keyframe, so a client joining at any time decodes
    within 0.4 s. ``size``: (width, height) to scale to."""
    if output.is_file():
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    scale = ["-vf", f"scale={size[0]}:{size[1]}"] if size else []
    partial = output.with_suffix(".partial.mp4")
    command = [
        "ffmpeg", "-nostdin", "-loglevel", "error", "-y",
        "-ss", str(start_seconds), "-t", str(duration_seconds), "-i", str(video),
        *scale, "-an", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-g", "10", "-x264-params", "repeat-headers=1", "-pix_fmt", "yuv420p", str(partial),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    partial.rename(output)
    return output


class Publisher:
    """An ffmpeg process sending a video, looped in real time, as RTP/H.264 to a UDP port."""

    def __init__(self, video: Path, udp_port: int) -> None:
        self.video = video
        self.udp_port = udp_port
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> Publisher:
        command = [
            "ffmpeg", "-nostdin", "-loglevel", "error", "-re", "-stream_loop", "-1",
            "-i", str(self.video), "-c", "copy", "-f", "rtp",
            f"rtp://127.0.0.1:{self.udp_port}?pkt_size=1200",
        ]  # fmt: skip
        self._process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        return self

    def pause(self) -> None:
        """Stop sending (SIGSTOP): the stream stalls, nothing is closed."""
        if self._process is not None:
            self._process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            self._process.send_signal(signal.SIGCONT)

    def replace(self, video: Path) -> None:
        """Publish another video on the same port (the RTSP session of clients stays up)."""
        self.stop()
        self.video = video
        self.start()

    def stop(self) -> None:
        if self._process is None:
            return
        self.resume()
        self._process.kill()
        self._process.wait(timeout=10)
        self._process = None


class RtspServer:
    """The GStreamer RTSP server process, one mount per name, each reading one UDP port."""

    def __init__(self, names: list[str], port: int | None = None) -> None:
        self.port = port or free_port()
        self.udp_ports = {name: free_port(socket.SOCK_DGRAM) for name in names}
        self._process: subprocess.Popen[str] | None = None

    def url(self, name: str) -> str:
        return f"rtsp://127.0.0.1:{self.port}/{name}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_seconds: float = 20.0) -> RtspServer:
        """Start the server and wait until it listens (its ``ready`` line)."""
        mounts = [f"--mount={name}={port}" for name, port in self.udp_ports.items()]
        self._process = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER_SCRIPT), "--port", str(self.port), *mounts],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        deadline = time.monotonic() + timeout_seconds
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # blocks until ready or exit
        if not line.startswith("ready") or time.monotonic() > deadline:
            self.kill()
            raise RuntimeError(f"RTSP server did not start on 127.0.0.1:{self.port}: {line!r}")
        return self

    def stop(self) -> None:
        """Terminate cleanly (clients see the connection close)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        """Start again on the same port and UDP ports."""
        self.kill()
        self.start()


class RtspCameras:
    """A server plus one publisher per camera: ``with RtspCameras({"cam0": video}) as rtsp``."""

    def __init__(self, videos: dict[str, Path]) -> None:
        self.server = RtspServer(list(videos))
        self.publishers = {
            name: Publisher(video, self.server.udp_ports[name]) for name, video in videos.items()
        }

    def url(self, name: str) -> str:
        return self.server.url(name)

    def start(self) -> RtspCameras:
        self.server.start()
        for publisher in self.publishers.values():
            publisher.start()
        return self

    def stop(self) -> None:
        for publisher in self.publishers.values():
            publisher.stop()
        self.server.stop()

    def __enter__(self) -> RtspCameras:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
