"""A face recognizer run in a child process, so that its network never holds this process's interpreter lock.

dlib holds Python's GIL while it embeds faces: a check of a new face stalled every other thread of a run for
hundreds of milliseconds (625 ms measured on a loaded 2-core machine). In a live run that is the thread
reading the camera: the server drops data and the next frames decode damaged; in a file run the decoder and
the encoder wait. Here the network runs in a child process and the calling thread waits on a pipe, which
releases the lock. Only the part of each frame around the faces crosses the pipe. The descriptor network now
runs on onnxruntime, which releases the lock, but dlib's landmarks and chip extraction still hold it, dlib's
own network (its fallback, ``network="dlib"``) holds it for the whole call, and a crash of any stays in the child.

A child that fails, dies or does not answer within ``timeout`` raises :class:`ModelError`, which the callers
treat as a recognizer failure: the face is covered with the strongest method (fail closed).
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from camouflage_video.errors import ModelError
from camouflage_video.evaluation.recognizers import Recognizer, load_recognizer
from camouflage_video.frame import Faces

#: Seconds the child may take to load its models, and to answer one call.
START_TIMEOUT, CALL_TIMEOUT = 120.0, 60.0


class ProcessRecognizer(Recognizer):
    """The recognizer ``name`` (see ``load_recognizer``) in a child process; distances are computed here.

    The child starts at once and loads its models while the run loads its own; the first call waits for it.

    Args:
        name: Registry name of the recognizer (``dlib``).
        timeout: Seconds one call may take before the child counts as failed.
        **options: ``load_recognizer``'s ``model``, ``threshold`` and the recognizer's own options
            (``network="dlib"``), used in the child.

    Examples:
        >>> recognizer = ProcessRecognizer("dlib")  # doctest: +SKIP
        >>> embedded = recognizer.embed_versions(original, [anonymized], faces)  # doctest: +SKIP
        >>> recognizer.close()  # doctest: +SKIP
    """

    def __init__(self, name: str = "dlib", timeout: float = CALL_TIMEOUT, **options: Any) -> None:
        self._lock = threading.Lock()
        self.timeout = timeout
        self.name, self._options = name, options
        self.threshold = float(options.get("threshold", type(self).threshold))
        self.restarts = 0
        self._described: dict = {}  # the child's own describe(), once it has loaded
        self._spawn()

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")  # no fork of a process that runs threads
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self.name, self._options), daemon=True,
                                        name=f"camouflage-recognizer-{self.name}")
        self._process.start()
        child.close()
        self._ready = False

    def _start(self) -> None:
        if self._ready and not self._process.is_alive():
            # It died (or was killed after a timeout): the call that saw it failed closed; the next ones get
            # a new child instead of failing, and so covering, every face for the rest of the run.
            self._conn.close()
            self.restarts += 1
            self._spawn()
        if self._ready:
            return
        attributes = self._receive(START_TIMEOUT)
        self.name, self.metric = attributes["name"], attributes["metric"]
        self.threshold, self.min_face_size = attributes["threshold"], attributes["min_face_size"]
        self._described = attributes["described"]
        self._ready = True

    @property
    def started(self) -> bool:
        """Whether the child has loaded its models (the first call, or ``wait``, waits for it)."""
        return self._ready

    def wait(self) -> ProcessRecognizer:
        """Wait for the child's models (their errors are raised here); returns ``self``."""
        with self._lock:
            self._start()
        return self

    def embed_versions(self, original: np.ndarray, versions: Sequence[np.ndarray], faces: Faces) -> list[np.ndarray]:
        if len(faces) == 0:
            return [self._empty() for _ in range(1 + len(versions))]
        h, w = original.shape[:2]
        boxes = np.asarray(faces.xyxy, np.float64)
        # The faces and a margin as wide as the largest of them: all the alignment and the network look at.
        margin = float(np.max(np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])))
        x1, y1 = max(0, int(boxes[:, 0].min() - margin)), max(0, int(boxes[:, 1].min() - margin))
        x2, y2 = min(w, int(np.ceil(boxes[:, 2].max() + margin))), min(h, int(np.ceil(boxes[:, 3].max() + margin)))
        crops = [np.ascontiguousarray(image[y1:y2, x1:x2]) for image in (original, *versions)]
        with self._lock:
            self._start()
            try:
                self._conn.send((crops, boxes - [x1, y1, x1, y1]))
            except (OSError, ValueError) as exc:
                raise ModelError(f"the {self.name} recognizer process is gone ({exc})") from exc
            return self._receive(self.timeout)

    def _receive(self, timeout: float) -> Any:
        try:
            if not self._conn.poll(timeout):
                self._process.kill()
                self._process.join(5)  # gone before the next call looks, so that one starts a new child
                raise ModelError(f"the {self.name} recognizer did not answer within {timeout:g} s")
            kind, value = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise ModelError(f"the {self.name} recognizer process ended (exit code {self._process.exitcode})") from exc
        if kind == "error":
            raise ModelError(f"{self.name} recognizer: {value}")
        return value

    def describe(self) -> dict:
        """The child's own describe() (dlib's ``network``: onnxruntime or its fallback) once it has loaded.

        Does not wait for the child: before it has loaded, only what this process knows.
        """
        return {**super().describe(), **self._described, "process": True, "restarts": self.restarts}

    def close(self) -> None:
        """Stop the child (also done when this object is collected and when the program ends)."""
        try:
            self._conn.send(None)
        except (OSError, ValueError):
            pass
        self._process.join(timeout=5)
        if self._process.is_alive():
            self._process.kill()
        self._conn.close()

    def __del__(self) -> None:
        if getattr(self, "_process", None) is not None and self._process.is_alive():
            self.close()


def _serve(conn: Any, name: str, options: dict[str, Any]) -> None:
    """The child: load the recognizer, then embed until told to stop (``None``) or the parent goes away."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it stops us
    try:
        recognizer = load_recognizer(name, **options)
    except Exception as exc:  # noqa: BLE001 - sent to the parent as one line
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        return
    conn.send(("ok", {"name": recognizer.name, "metric": recognizer.metric, "threshold": recognizer.threshold,
                      "min_face_size": recognizer.min_face_size, "described": recognizer.describe()}))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        crops, boxes = message
        try:
            embedded = recognizer.embed_versions(crops[0], crops[1:], Faces.from_boxes(boxes.astype(np.float32)))
            conn.send(("ok", embedded))
        except Exception as exc:  # noqa: BLE001 - the parent turns it into a recognizer failure
            conn.send(("error", f"{type(exc).__name__}: {exc}"))


def isolated_recognizer(name: str = "dlib", **options: Any) -> Recognizer:
    """The recognizer ``name`` in a child process where this process may start one; else in this process.

    A daemonic process (a dataset worker) may not have children. It reads no live camera, so dlib holding
    its lock only slows its own decoding a little. ``options`` go to ``load_recognizer`` either way.
    """
    if multiprocessing.current_process().daemon:
        return load_recognizer(name, **options)
    return ProcessRecognizer(name, **options)
