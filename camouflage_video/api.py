"""The Python API: one call that does what ``camouflage-video anonymize`` does."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from camouflage_video.annotators.base import Annotator
from camouflage_video.config import AnonymizeConfig, build_stages
from camouflage_video.errors import ConfigError
from camouflage_video.monitor import LiveMonitor
from camouflage_video.pipelines.anonymizer import Anonymizer
from camouflage_video.preflight import Write, check_writes
from camouflage_video.runner import Runner
from camouflage_video.sinks import Sink, check_output, default_output, open_sink
from camouflage_video.sources import SourceInfo, is_stream_uri, open_source
from camouflage_video.sources.stream import StreamOptions
from camouflage_video.stats import RunStats

StageFactory = Callable[[SourceInfo], tuple[list[Annotator], Anonymizer]]


def anonymize(
    source: str | os.PathLike[str],
    output: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    config: AnonymizeConfig | None = None,
    *,
    progress: bool | None = False,
    stats_path: str | os.PathLike[str] | None = None,
    stages: StageFactory | None = None,
    on_frame: Callable[[RunStats], None] | None = None,
    source_options: StreamOptions | Mapping[str, object] | None = None,
    stats_interval: float = 5.0,
    **options: object,
) -> RunStats:
    """Anonymize a video file, image, image folder or stream.

    Args:
        source: Input path or URL.
        output: Output path(s); defaults to ``<stem>_anonymized<ext>`` beside the input.
        config: Run options; keyword ``options`` override single fields (``method="pixelate"``).
        progress: Show a progress bar (``None``: only on a terminal).
        stats_path: Also write the stats JSON there; live runs rewrite it every ``stats_interval`` seconds.
        stages: Builds the stages for the opened input; defaults to ``build_stages(config, info)``. Pass a
            :class:`~camouflage_video.config.StageCache` to reuse loaded models over many inputs.
        on_frame: Called with the stats after every output frame (progress of the caller's own).
        source_options: Settings of stream sources: a ``StreamOptions``, or a mapping of its fields
            (timeouts, reconnection, ...).
        stats_interval: Seconds between rewrites of ``stats_path`` during a live run.

    Returns:
        The run's statistics.

    Raises:
        CamouflageError: Bad input, output or options; nothing is left under the output name.
        KeyboardInterrupt: After finalizing what was processed.

    Examples:
        >>> stats = anonymize("street.mp4", method="pixelate", mask_scale=1.4)  # doctest: +SKIP
        >>> stats.frames_out, stats.fallback_frames  # doctest: +SKIP
        (250, 0)
    """
    config = (config or AnonymizeConfig()).with_options(**options) if options else (config or AnonymizeConfig())
    if isinstance(source_options, StreamOptions):
        opened_with: StreamOptions = source_options
    else:  # a mapping of StreamOptions fields
        opened_with = replace(StreamOptions(), **(source_options or {}))
    if not config.audio:
        opened_with = replace(opened_with, audio=False)  # not even decoded
    with open_source(local_path(source), options=opened_with) as src:
        targets = [local_path(t) for t in _targets(src.info.uri, src.info.kind, output)]
        check_writes(
            [Write("output", Path(t), folder=src.info.kind == "folder") for t in targets if not is_stream_uri(t)]
            + ([Write("--stats file", Path(stats_path))] if stats_path is not None else [])
            + ([Write("--tracks-out file", Path(config.tracks_out))] if config.tracks_out else []),
            reads=([] if is_stream_uri(src.info.uri) else [src.info.uri])
            + [p for p in (config.tracks_in, config.regions, *config.keep_person, *config.only_person) if p],
        )
        for target in targets:  # an encoder that refuses its settings fails now, not after the models load
            check_output(target, src.info, config.encoder)
        annotators, anonymizer = (stages or partial(build_stages, config))(src.info)
        sinks: list[Sink] = []
        try:  # until the runner owns the sinks, anything that stops us (Ctrl-C included) discards them
            for target in targets:
                sinks.append(open_sink(target, src.info, encoder=config.encoder, audio=config.audio,
                                       open_timeout=opened_with.open_timeout,
                                       live_audio=getattr(src, "audio", None)))
            # Live runs: latency, drops and reconnects go into the stats, rewritten every few seconds.
            monitor = (
                LiveMonitor(src, sinks, stats_path, interval=stats_interval, then=on_frame) if src.info.live else None
            )
            runner = Runner(
                src, sinks, annotators, anonymizer,
                on_error=config.on_error, progress=progress, on_frame=monitor or on_frame,
            )
        except BaseException:
            for sink in sinks:
                sink.abort()
            raise
        try:
            stats = runner.run()
        finally:
            if monitor is not None:
                monitor.update(runner.stats)
            if stats_path is not None:
                runner.stats.write(stats_path)
    return stats


def local_path(uri: str | os.PathLike[str]) -> str:
    """A ``file:`` URL as the path it names (it is a file, not a live stream); anything else unchanged.

    Examples:
        >>> local_path("file:///data/clip%201.mp4")
        '/data/clip 1.mp4'
    """
    text = os.fspath(uri)
    if not text.lower().startswith("file:"):
        return text
    parsed = urlsplit(text)
    if parsed.netloc not in ("", "localhost"):
        raise ConfigError(f"{text}: a file URL on another host ({parsed.netloc}) cannot be read; mount it")
    return url2pathname(parsed.path)


def _targets(uri: str, kind: str, output: object) -> list[str]:
    if output is None:
        if is_stream_uri(uri):
            raise ConfigError("a stream input needs an output (-o)")
        outputs = [str(default_output(uri, kind))]
    elif isinstance(output, (str, os.PathLike)):
        outputs = [os.fspath(output)]
    else:
        outputs = [os.fspath(o) for o in output]  # type: ignore[union-attr]
    if not outputs:
        raise ConfigError("no output given")
    return outputs
