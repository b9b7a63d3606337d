"""Command line: ``camouflage-video COMMAND ...``, one module per command. The only place errors become exit codes.

Each command module has ``add_parser(commands)``, which adds its subcommand and sets ``func`` to the function
that runs it. Options that are fields of an options dataclass are generated from it (``cli.flags``).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import warnings
from collections.abc import Sequence

from camouflage_video import __version__
from camouflage_video.cli.run_options import config_from_args
from camouflage_video.errors import CamouflageError
from camouflage_video.interrupts import Finalized, InterruptOnce
from camouflage_video.redact import RedactingFilter, one_line, redact_url

__all__ = ["build_parser", "config_from_args", "main"]

logger = logging.getLogger("camouflage_video")

#: The command modules, in the order the help lists them.
COMMANDS = ("anonymize", "serve", "recover", "dataset", "review", "sample", "models", "train_light", "evaluate")


def build_parser() -> argparse.ArgumentParser:
    from camouflage_video.cli.anonymize import EXAMPLES

    parser = argparse.ArgumentParser(
        prog="camouflage-video",
        description="Anonymize faces in videos, images, image folders and streams.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"camouflage_video.cli.{name}").add_parser(commands)
    return parser


def _quiet_opencv() -> None:
    """No "[ WARN:0@...]" lines from OpenCV (on odd TIFF tags): its errors still reach the caller."""
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:  # noqa: ANN001, ARG001
    """A Python warning as one log line (hidden by -q), not Python's two lines with the source."""
    text = str(message).strip().splitlines()
    logging.getLogger("camouflage_video").warning("%s%s", text[0] if text else category.__name__,
                                                  f" ({category.__name__})" if text else "")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (0 ok, 1 failure, 2 usage, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    quiet = getattr(args, "quiet", False)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.ERROR if quiet else logging.WARNING,
        format="camouflage-video: %(levelname)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())  # stream URLs carry passwords; no log line may show them
    if not debug:
        warnings.showwarning = _warning_line  # libraries' warnings (Pillow's on a damaged file): one line, redacted
        _quiet_opencv()
    previous = _install_signal_handlers() if _in_main_thread() else {}
    try:
        return args.func(args)
    except Finalized:
        print("camouflage-video: interrupted; what was processed has been saved", file=sys.stderr)
        return 130
    except KeyboardInterrupt:  # before anything was finalized: while models loaded, before the first frame
        print("camouflage-video: interrupted before any output was written", file=sys.stderr)
        return 130
    except CamouflageError as exc:
        if debug:
            logger.exception("failed")
        print(f"camouflage-video: error: {one_line(redact_url(str(exc)))}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug shows the traceback
        if debug:
            logger.exception("failed")  # through the RedactingFilter: a bare traceback would quote secrets
        print(f"camouflage-video: error: {type(exc).__name__}: {one_line(redact_url(str(exc)))}", file=sys.stderr)
        return 1
    finally:
        pressed = _count_interrupts()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if pressed and argv is None:
            # Run as the program and on its way out: a press now would kill it with a traceback, or once
            # Python's finalization has put the default handler back, with exit status -2 instead of 130.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        elif pressed:
            signal.signal(signal.SIGINT, InterruptOnce(raises=0, first=pressed))


def _install_signal_handlers() -> dict[int, object]:
    """Ctrl-C and SIGTERM both finalize what was processed; returns the handlers they replaced.

    A shell starts background jobs (``cmd &`` in a script, no job control) with SIGINT ignored, and Python
    then keeps it ignored: ``kill -INT`` did nothing and SIGTERM, which takes the SIGINT path, neither, so a
    service wrapper's stop ended in SIGKILL and a lost recording. Like ffmpeg, take SIGINT back.

    The first interrupt raises; later ones are only counted while what was processed is finalized, since a
    second Ctrl-C that raised inside the finalizing lost the whole output.
    """
    return {
        signal.SIGTERM: signal.signal(signal.SIGTERM, _interrupt),
        signal.SIGINT: signal.signal(signal.SIGINT, InterruptOnce()),
    }


def _count_interrupts() -> int:
    handler = signal.getsignal(signal.SIGINT) if _in_main_thread() else None
    return handler.count if isinstance(handler, InterruptOnce) else 0


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM (a service manager stopping us) takes the Ctrl-C path, whatever that is for the command
    (anonymize: finalize what was processed; dataset: finish the files in progress)."""
    signal.raise_signal(signal.SIGINT)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    raise SystemExit(main())
