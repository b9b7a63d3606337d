"""Moves frames through the stages: source → annotators → anonymizer → sinks.

Decoding, annotating (detection, tracking), anonymizing and encoding run in four threads joined by bounded
queues, so they overlap and memory stays constant on any length of input: the detector's next frame runs
while the anonymizer (and its identity checks) works on the one before. A live frame is annotated and
anonymized on one thread, so it never waits in a queue while newer frames arrive. For files, annotated
frames can be held back a little (``look_ahead`` of annotators such as Backfill) so that later frames revise
them before they are anonymized: a face is then covered from the frame it first shows in. Fail closed: a
frame whose annotation or anonymization raises gets the whole-frame fallback (or stops the run with
``on_error="fail"``); the original pixels never reach a sink. Ctrl-C stops reading, finishes the frames in
flight and finalizes the outputs (frames still held back for look-ahead are not written).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext

import numpy as np

from camouflage_video.annotators.base import Annotator
from camouflage_video.errors import ConfigError, ProcessingError
from camouflage_video.frame import Frame, FrameContext
from camouflage_video.interrupts import Finalized, interrupts_deferred
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.pipelines.classic import fallback_image
from camouflage_video.sinks.base import Sink
from camouflage_video.sources.base import Source, SourceInfo
from camouflage_video.stats import RunStats

logger = logging.getLogger(__name__)

_END = object()
QUEUE_BYTES = 128 * 2**20  # RGB pixels each queue between stages may hold
LOOK_AHEAD_BYTES = 256 * 2**20  # RGB pixels held back for annotators that revise earlier frames
_FAILED = "runner.failed"  # FrameContext.extras key: this frame's annotation failed, it gets the fallback


def held_frames(info: SourceInfo, wanted: int) -> int:
    """Frames the runner holds back for ``wanted`` frames of look-ahead: none for a live source, and fewer of a
    very large picture (at most ``LOOK_AHEAD_BYTES`` of them)."""
    if info.live or wanted <= 0:
        return 0
    frame_bytes = max(1, info.width * info.height * 3)
    return min(wanted, max(1, LOOK_AHEAD_BYTES // frame_bytes))


class Runner:
    """Run one source through annotators and an anonymizer into one or more sinks.

    Args:
        source: Opened source.
        sinks: Opened sinks; each receives every output frame.
        annotators: Run in order on every frame before the anonymizer.
        anonymizer: Writes the output pixels.
        on_error: ``"fallback"`` (default) pixelates a failing frame whole; ``"fail"`` stops the run
            and discards the outputs.
        progress: Show a progress bar (``None``: only on a terminal).
        queue_size: Frames buffered between stages; by default as many as fit in 128 MiB, 2 to 8
            (8 at 1080p, 5 at 4K, 2 at 8K), so high resolutions do not multiply the memory a run needs.
        on_frame: Called with the stats after every output frame (live monitoring).
        turn: Live sources: held from taking a picture until it is handed to the writer (a context manager
            entered once per picture), so cameras that share the cores take turns (``serve.turns``).

    Examples:
        >>> with open_source("in.mp4") as src:  # doctest: +SKIP
        ...     sink = open_sink("out.mp4", src.info)
        ...     stats = Runner(src, [sink], [CenterFaceDetector()], ClassicObfuscator()).run()
    """

    def __init__(
        self,
        source: Source,
        sinks: Sequence[Sink],
        annotators: Sequence[Annotator],
        anonymizer: Anonymizer,
        *,
        on_error: str = "fallback",
        progress: bool | None = None,
        queue_size: int | None = None,
        on_frame: Callable[[RunStats], None] | None = None,
        turn: AbstractContextManager | None = None,
    ) -> None:
        if on_error not in ("fallback", "fail"):
            raise ConfigError(f"on_error must be 'fallback' or 'fail', got {on_error!r}")
        self.source, self.sinks, self.annotators, self.anonymizer = source, list(sinks), list(annotators), anonymizer
        self.on_error, self.progress, self.on_frame = on_error, progress, on_frame
        taking_turns = turn is not None and source.info.live
        self._turn = turn if taking_turns else nullcontext()
        # Never hold a turn idle: wait for the next picture first (a frame interval at most: an outage's
        # black frames come from the source's own clock).
        self._picture_ready = getattr(source, "wait_for_picture", None) if taking_turns else None
        self._interval = 1 / float(source.info.fps) if source.info.fps else 0.04
        self.stats = RunStats(input=source.info.to_dict(), method=anonymizer.name)
        # A live source keeps only its newest frame on its own thread; the processor takes frames straight
        # from it (no reader queue holding stale ones) and one processed frame waits for the writer.
        self._live = iter(source) if source.info.live else None
        if queue_size is None:
            frame_bytes = max(1, source.info.width * source.info.height * 3)
            queue_size = min(8, max(2, QUEUE_BYTES // frame_bytes))
        self._decoded: queue.Queue = queue.Queue(queue_size)
        # Batches between the annotating and the anonymizing thread: two absorb the jitter between them, fewer
        # where batches are large (a generative batch of 4K frames), so the memory bound above holds.
        batch = max(1, getattr(anonymizer, "batch_size", 1))
        self._annotated: queue.Queue = queue.Queue(max(1, min(2, queue_size // batch)))
        self._counting = threading.Lock()  # frames fail on the annotating and on the anonymizing thread
        self._processed: queue.Queue = queue.Queue(1 if self._live is not None else queue_size)
        self._stop = threading.Event()
        self._failure: BaseException | None = None
        self._ended = False
        # Look-ahead: annotators that revise earlier frames (Backfill) get that many frames held back.
        # Live sources never wait; held frames count against the same memory bound as the queues.
        self._revisers = [a for a in self.annotators if getattr(a, "look_ahead", 0) > 0]
        wanted = max((a.look_ahead for a in self._revisers), default=0)
        self._look_ahead = held_frames(source.info, wanted)
        self._held: list[FrameContext] = []

    def run(self) -> RunStats:
        """Process everything; returns the stats. Re-raises KeyboardInterrupt after finalizing."""
        reader = threading.Thread(target=self._read, name="camouflage-read", daemon=True)
        writer = threading.Thread(target=self._write, name="camouflage-write", daemon=True)
        self._bar = bar = _progress_bar(self.progress, self.source.info.frame_count)
        # Files: anonymizing has its own thread, so the detector's next frames overlap it. A live frame is
        # anonymized as soon as it is annotated: in a queue it would grow stale while newer ones arrive.
        anonymizer = threading.Thread(target=self._anonymize_all, name="camouflage-anonymize", daemon=True)
        if self._live is None:
            reader.start()
            anonymizer.start()
        writer.start()
        interrupted = False
        try:
            while True:
                if self._picture_ready is not None:
                    self._picture_ready(self._interval)
                with self._turn:
                    if not (batch := self._next_batch()):
                        break
                    self._emit(self._hold_back(self._annotate(batch)))
            self._end_of_input()
            self._emit(self._held)  # the end: nothing later can revise them
            self._held = []
        except KeyboardInterrupt:
            interrupted = self.stats.interrupted = True
        except BaseException as exc:  # noqa: BLE001 - finalize (discard) the outputs, then re-raise it
            self._failure = self._failure or exc
        finally:
            # A second Ctrl-C must not cut the finalizing short: that lost the whole output.
            with interrupts_deferred():
                if interrupted or self._failure is not None:
                    self._stop.set()
                if anonymizer.is_alive():  # it drains its queue (skipping it once stopped), then ends the writer's
                    self._put(self._annotated, _END, until_stopped=False)
                    anonymizer.join()
                else:
                    self._put(self._processed, _END, until_stopped=False)  # the writer drains what is queued
                writer.join()
                if reader.is_alive():
                    reader.join(timeout=5)
                bar.close()
                self._finalize()
        if interrupted:
            raise Finalized
        return self.stats

    # -- the three stages -------------------------------------------------------------------------

    def _read(self) -> None:
        try:
            frames = iter(self.source)
            while not self._stop.is_set():
                t0 = time.perf_counter()
                frame = next(frames, _END)
                self.stats.seconds["decode"] += time.perf_counter() - t0
                if not self._put(self._decoded, frame) or frame is _END:
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self._failure = self._failure or exc
        self._put(self._decoded, _END)

    def _annotate(self, frames: list[Frame]) -> list[FrameContext]:
        """Run every annotator on each frame; a frame whose annotation fails is marked for the fallback."""
        stats = self.stats
        stats.frames_in += len(frames)
        contexts = [FrameContext(frame) for frame in frames]
        for ctx in contexts:
            try:
                for annotator in self.annotators:
                    t0 = time.perf_counter()
                    annotator.annotate(ctx)
                    stats.seconds[annotator.name] += time.perf_counter() - t0
            except Exception as exc:  # noqa: BLE001 - fail closed: the frame gets the fallback (or the run stops)
                self._fail(ctx.frame, exc)
                ctx.extras[_FAILED] = exc
        return contexts

    def _hold_back(self, contexts: list[FrameContext]) -> list[FrameContext]:
        """With look-ahead (files only), keep the newest frames back so later ones can revise them (faces
        carried back to the frame they appeared in); returns the frames that are ready to anonymize."""
        if not self._look_ahead:
            return contexts
        ready = []
        for ctx in contexts:
            if _FAILED not in ctx.extras:
                t0 = time.perf_counter()
                try:
                    for reviser in self._revisers:
                        reviser.revise(ctx, self._held)
                except Exception as exc:  # noqa: BLE001 - fail closed, as above
                    self._fail(ctx.frame, exc)
                    ctx.extras[_FAILED] = exc
                self.stats.seconds["backfill"] += time.perf_counter() - t0
            self._held.append(ctx)
            if len(self._held) > self._look_ahead:
                ready.append(self._held.pop(0))
        return ready

    def _end_of_input(self) -> None:
        """The input ended: annotators that put work off on its last frame do it now (the detector skipping
        frames: no later detected frame would fill the last ones in), and the revisers carry it back."""
        if not self._held or _FAILED in self._held[-1].extras:
            return
        last = self._held[-1]
        try:
            changed = [at_end(last) for a in self.annotators if (at_end := getattr(a, "end_of_input", None))]
            if any(changed):
                for reviser in self._revisers:
                    reviser.revise(last, self._held[:-1])
        except Exception as exc:  # noqa: BLE001 - fail closed, as above
            self._fail(last.frame, exc)
            last.extras[_FAILED] = exc

    def _emit(self, contexts: list[FrameContext]) -> None:
        """Hand ready frames on to be anonymized, at most a batch at a time: to the anonymizer's thread, or
        (live) anonymized here."""
        size = max(1, getattr(self.anonymizer, "batch_size", 1))
        for start in range(0, len(contexts), size):
            chunk = contexts[start : start + size]
            if self._live is not None:
                self._finish(chunk)
            elif not self._put(self._annotated, chunk):
                return
            if self._failure is not None:
                raise self._failure

    def _anonymize_all(self) -> None:
        """The anonymizer's thread (files): anonymize queued batches in order."""
        while (chunk := self._annotated.get()) is not _END:
            if self._failure is not None:
                continue  # drain without anonymizing: the outputs will be discarded
            # Ctrl-C: what was annotated before it is still anonymized and written (two batches at most).
            try:
                self._finish(chunk)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._failure = self._failure or exc
                self._stop.set()
        self._put(self._processed, _END, until_stopped=False)  # the writer drains what is queued

    def _finish(self, chunk: list[FrameContext]) -> None:
        """Anonymize one batch and queue it for the writer."""
        for ctx, image in zip(chunk, self._anonymize(chunk), strict=True):
            # Not given up on a Ctrl-C: the writer drains its queue until the end, after a failure too.
            self._put(self._processed, (ctx.frame, image), until_stopped=False)
            self._bar.update(1)

    def _anonymize(self, contexts: list[FrameContext]) -> list[np.ndarray]:
        """Anonymize annotated frames in one call; any failure gives all of them the fallback."""
        stats = self.stats
        images: list[np.ndarray | None] = [None] * len(contexts)
        # A picture decoded from damaged data may hold a ghost face no detector finds: pixelated whole.
        todo = [i for i, ctx in enumerate(contexts) if _FAILED not in ctx.extras and not ctx.frame.damaged]
        with self._counting:
            stats.damaged_frames += sum(ctx.frame.damaged for ctx in contexts)
        try:
            if todo:
                t0 = time.perf_counter()
                ctxs = [contexts[i] for i in todo]
                made = [self.anonymizer(ctxs[0])] if len(ctxs) == 1 else list(self.anonymizer.process_batch(ctxs))
                stats.seconds["anonymize"] += time.perf_counter() - t0
                if len(made) != len(ctxs):
                    raise ProcessingError(f"{self.anonymizer.name} returned {len(made)} images for {len(ctxs)} frames")
                for i, ctx, image in zip(todo, ctxs, made, strict=True):
                    if image.shape != ctx.frame.image.shape or image.dtype != np.uint8:
                        raise ProcessingError(f"{self.anonymizer.name} returned {image.shape} {image.dtype}")
                    images[i] = image
        except Exception as exc:  # noqa: BLE001 - fail closed: these frames get the fallback (or the run stops)
            for i in todo:
                self._fail(contexts[i].frame, exc)
                images[i] = None
        for ctx in contexts:
            if ctx.faces is not None and len(ctx.faces):
                held = int(ctx.faces.held.sum())
                stats.faces_detected += len(ctx.faces) - held
                stats.faces_held += held
                stats.frames_with_faces += 1
        return [fallback_image(ctx.frame.image) if image is None else image for ctx, image in zip(contexts, images,
                                                                                                    strict=True)]

    def _fail(self, frame: Frame, exc: Exception) -> None:
        """A frame that failed: stop with ``on_error="fail"``, else count it (it gets the fallback)."""
        if self.on_error == "fail":
            raise ProcessingError(f"frame {frame.index}: {type(exc).__name__}: {exc}") from exc
        logger.warning("frame %d: %s: %s; writing the fallback frame", frame.index, type(exc).__name__, exc)
        with self._counting:
            self.stats.fallback_frames += 1
            self.stats.note_error(f"frame {frame.index}: {type(exc).__name__}: {exc}")

    def _write(self) -> None:
        while True:
            item = self._processed.get()
            if item is _END:
                return
            if self._failure is not None:
                continue  # drain without writing: the outputs will be discarded
            frame, image = item
            try:
                t0 = time.perf_counter()
                for sink in self.sinks:
                    sink.write(frame, image)
                self.stats.seconds["encode"] += time.perf_counter() - t0
                self.stats.frames_out += 1
                self.stats.last_frame_time = None if frame.time is None else float(frame.time)
                if self.on_frame is not None:
                    self.on_frame(self.stats)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                self._failure = self._failure or exc
                self._stop.set()

    # -- plumbing ---------------------------------------------------------------------------------

    def _next_batch(self) -> list[Frame]:
        """The next frame plus frames already decoded, up to the anonymizer's batch size; [] at the end.

        It never waits to fill a batch, so a live stream's latency does not grow with the batch size.
        """
        if self._ended or (first := self._next_decoded()) is _END:
            return []
        batch = [first]
        while len(batch) < getattr(self.anonymizer, "batch_size", 1):
            try:
                item = self._decoded.get_nowait()
            except queue.Empty:
                break
            if item is _END:
                self._ended = True
                break
            batch.append(item)
        return batch

    def _next_decoded(self) -> object:
        while True:
            if self._failure is not None:
                raise self._failure
            if self._live is not None:
                return next(self._live, _END)
            try:
                return self._decoded.get(timeout=0.1)
            except queue.Empty:
                continue

    def _put(self, q: queue.Queue, item: object, *, until_stopped: bool = True) -> bool:
        """Put ``item``; give up (False) once the run is stopping, unless ``until_stopped`` is False."""
        while not (until_stopped and self._stop.is_set()):
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _finalize(self) -> None:
        stats = self.stats
        stats.corrupt_frames = self.source.corrupt_frames
        stats.not_read = list(getattr(self.source, "not_read", ()))
        if shortfall := getattr(self.source, "shortfall", None):
            stats.note_error(f"input: {shortfall}")
        stats.tracks = sum(len(getattr(a, "seen_ids", ())) for a in self.annotators)
        stats.model = self.anonymizer.stats()
        stats.annotators = {a.name: described for a in self.annotators if (described := a.describe())}
        failure = self._failure
        finish = getattr(self.anonymizer, "finish", None)  # side outputs of the anonymizer (a tracks file)
        if finish is not None:
            try:
                finish(completed=failure is None, frames=stats.frames_in)
            except Exception as exc:  # noqa: BLE001 - a side output that cannot be written fails the run
                failure = failure or exc
        # Files first: a restream whose server stalls may take its whole timeout to close.
        for sink in sorted(self.sinks, key=lambda s: s.remote):
            try:
                if failure is None:
                    sink.close(interrupted=stats.interrupted)
                else:
                    sink.abort()
            except BaseException as exc:  # noqa: BLE001 - one sink failing discards them all; re-raised below
                failure = failure or exc
                for other in self.sinks:
                    other.abort()
        publish = getattr(self.anonymizer, "publish", None)  # its side outputs, once the sinks are published
        if publish is not None:
            try:
                publish(completed=failure is None)
            except Exception as exc:  # noqa: BLE001 - a side output that cannot be published fails the run
                failure = failure or exc
        stats.outputs = [sink.describe() for sink in self.sinks]
        stats.finish()
        if failure is not None:
            raise failure


def _progress_bar(enabled: bool | None, total: int | None):  # noqa: ANN202 - tqdm or a stand-in
    from tqdm import tqdm

    return tqdm(total=total, unit="frame", disable=None if enabled is None else not enabled, dynamic_ncols=True)
