#!/usr/bin/python3
"""A real RTSP server for the tests and the README's "Try it with RTSP" recipe.

GStreamer's gst-rtsp-server (Debian: gstreamer1.0-rtsp, gir1.2-gst-rtsp-server-1.0,
python3-gi, gstreamer1.0-plugins-good; ``make rtsp-deps``). It runs on the *system* Python
(``/usr/bin/python3``, where python3-gi lives), never imports crosscam, and serves one mount per
camera, ``rtsp://127.0.0.1:<port>/<name>`` (TCP interleaved only). Each mount re-payloads
RTP/H.264 that arrives on a UDP port of 127.0.0.1, where ffmpeg publishes a video:

    ffmpeg -re -stream_loop -1 -i cam0.mp4 -c copy -f rtp rtp://127.0.0.1:5000
    /usr/bin/python3 tests/gst_rtsp_server.py --port 8554 --mount cam0=5000

UDP decouples the two: killing or restarting the server does not disturb the publisher, and a
stopped publisher (SIGSTOP) gives a stream that stalls without closing. The media of a mount is
shared by its clients and prepared when the first one connects.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402

RTP_CAPS = "application/x-rtp,media=video,clock-rate=90000,encoding-name=H264,payload=96"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8554)
    parser.add_argument(
        "--mount", action="append", default=[], metavar="NAME=UDP_PORT", help="repeatable"
    )
    arguments = parser.parse_args(argv)
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(arguments.address)
    server.set_service(str(arguments.port))
    mounts = server.get_mount_points()
    for mount in arguments.mount:
        name, _, udp_port = mount.partition("=")
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(
            f'( udpsrc address=127.0.0.1 port={int(udp_port)} caps="{RTP_CAPS}" '
            "! rtph264depay ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
        )
        factory.set_shared(True)
        factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
        mounts.add_factory(f"/{name}", factory)
    if server.attach(None) == 0:
        print(f"cannot listen on {arguments.address}:{arguments.port}", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal_number, loop.quit)
    print(f"ready rtsp://{arguments.address}:{arguments.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
