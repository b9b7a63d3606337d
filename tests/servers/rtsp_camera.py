"""A camera stand-in: serves raw RGB frames from a file over RTSP, looping forever, at a fixed rate.

Run with Debian's own python3 (the GStreamer GI bindings come from Debian packages, not from pip):

    /usr/bin/python3 rtsp_camera.py --frames clip.rgb --width 640 --height 360 --fps 25 --port 0

It prints ``READY <port>`` once clients can connect. Frames are pushed from a Python thread (a GLib
timeout would deadlock DESCRIBE). With ``--stamp`` the camera draws its CLOCK_MONOTONIC time in
milliseconds into each frame as it is pushed, as black/white blocks in its four corners, so a
reader can measure glass-to-glass latency (see ``read_stamp`` in tests/live_servers.py).

Each picture is one H.264 slice. With ``--broken-slices`` it is several (x264's sliced threads) and the RTP
payloader repeats SPS/PPS before every IDR slice, i.e. between the slices of one picture: decoders take the
halves for two pictures and fill in the missing parts from earlier ones, so no picture ever decodes clean (a
misconfigured camera; what a lossy network does to a good one).
Only the standard library and GI are used here.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402 - after require_version

STAMP_BITS, STAMP_BLOCK = 32, 8


def stamp_code(millis: int) -> int:
    """24 bits of milliseconds and an 8-bit check, so a stamp half covered by a blur is not misread."""
    millis &= 0xFFFFFF
    return millis << 8 | ((millis >> 16) + (millis >> 8) + millis + 0xA5) & 0xFF


def stamp(frame: bytearray, width: int, height: int, millis: int) -> None:
    """Draw the stamp as 32 black/white 8x8 blocks in all four corners (a blurred face may cover some)."""
    white, black = b"\xff" * (3 * STAMP_BLOCK), b"\x00" * (3 * STAMP_BLOCK)
    code = stamp_code(millis)
    row = b"".join(white if code >> (STAMP_BITS - 1 - i) & 1 else black for i in range(STAMP_BITS))
    for y in [*range(STAMP_BLOCK), *range(height - STAMP_BLOCK, height)]:
        for x in (0, width - STAMP_BITS * STAMP_BLOCK):
            start = 3 * (width * y + x)
            frame[start : start + len(row)] = row


class Camera:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        size = args.width * args.height * 3
        with open(args.frames, "rb") as f:
            data = f.read()
        self.frames = [data[i : i + size] for i in range(0, len(data) - size + 1, size)]
        if not self.frames:
            sys.exit(f"{args.frames}: no complete {args.width}x{args.height} RGB frame")

    def on_media_configure(self, factory, media) -> None:
        appsrc = media.get_element().get_child_by_name("src")
        threading.Thread(target=self.push, args=(appsrc,), daemon=True).start()

    def push(self, appsrc) -> None:
        """Push frames on an absolute schedule until the media is torn down."""
        interval, index, due = 1.0 / self.args.fps, 0, time.monotonic()
        while True:
            due += interval
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            frame = self.frames[index % len(self.frames)]
            if self.args.stamp:
                frame = bytearray(frame)
                stamp(frame, self.args.width, self.args.height, int(time.monotonic() * 1000) & 0xFFFFFFFF)
            if appsrc.emit("push-buffer", Gst.Buffer.new_wrapped(bytes(frame))) != Gst.FlowReturn.OK:
                return
            index += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", required=True)
    parser.add_argument("--width", type=int, required=True)
    parser.add_argument("--height", type=int, required=True)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--path", default="/cam")
    parser.add_argument("--stamp", action="store_true")
    parser.add_argument("--broken-slices", action="store_true")
    args = parser.parse_args()

    Gst.init(None)
    camera = Camera(args)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    caps = f"video/x-raw,format=RGB,width={args.width},height={args.height},framerate={args.fps}/1"
    factory.set_launch(
        f"( appsrc name=src is-live=true format=time do-timestamp=true max-bytes=0 max-buffers=2 "
        f"leaky-type=downstream caps={caps} ! videoconvert ! video/x-raw,format=I420 "
        f"! x264enc tune=zerolatency speed-preset=ultrafast sliced-threads={str(args.broken_slices).lower()} "
        f"key-int-max={args.fps} "
        f"! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(True)
    factory.connect("media-configure", camera.on_media_configure)
    server.get_mount_points().add_factory(args.path, factory)
    server.attach(None)
    print(f"READY {server.get_bound_port()}", flush=True)

    loop = GLib.MainLoop()
    signal.signal(signal.SIGTERM, lambda *_: loop.quit())
    loop.run()


if __name__ == "__main__":
    main()
