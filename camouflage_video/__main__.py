"""``python -m camouflage_video`` and the ``camouflage-video`` command.

The command's modules (numpy, PyAV, OpenCV, its own) take a few tenths of a second to load, before
``cli.main`` installs its Ctrl-C handling: a Ctrl-C then ended the command with a traceback. Here it ends it
as one line and exit status 130, as a Ctrl-C before any output is written does later.
"""

from __future__ import annotations

import signal
import sys
import threading


def _interrupted_loading(signum: int, frame: object) -> None:
    print("camouflage-video: interrupted before any output was written", file=sys.stderr)
    raise SystemExit(130)


def run() -> int:
    """The ``camouflage-video`` command; returns its exit status."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _interrupted_loading)
    from camouflage_video.cli import main

    return main()


if __name__ == "__main__":
    raise SystemExit(run())
