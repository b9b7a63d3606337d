"""Command line: ``camouflage-video anonymize|sample|models ...``. The only place errors become exit codes."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from camouflage_video import __version__
from camouflage_video.errors import CamouflageError, ConfigError
from camouflage_video.interrupts import InterruptOnce
from camouflage_video.live import RedactingFilter, redact_url

logger = logging.getLogger("camouflage_video")

EXAMPLES = """examples:
  camouflage-video anonymize street.mp4                    # writes street_anonymized.mp4 with its audio
  camouflage-video anonymize street.mp4 -o out.mkv --method pixelate --mask-scale 1.4 --stats stats.json
  camouflage-video anonymize photos/ -o photos_anon/       # image folder, recursive, same relative paths
  camouflage-video anonymize rtsp://user:pass@cam/stream1 -o rtmp://127.0.0.1/live/anon -o rec.mp4  # live
  camouflage-video sample -o sample.mp4                    # a clip with a real (public-domain) face
  camouflage-video anonymize clip.mp4 --method base --anonymization-scale 1.25 --seed 7   # CAMOUFLaGE-Base, GPU
  camouflage-video models fetch base                       # download the models of --method base
  camouflage-video anonymize clip.mp4 --method light --t2i-adapter ckpt/   # CAMOUFLaGE-Light (train-light makes ckpt/)
  camouflage-video dataset raw/ anonymized/ --workers 2    # a whole tree, with a manifest; rerun to resume
  camouflage-video evaluate clip.mp4 clip_anonymized.mp4 --report report.html   # re-identification risk
"""

DATASET_EXAMPLES = """examples:
  camouflage-video dataset raw/ anonymized/ --method blur --workers 2
  camouflage-video dataset raw/ anonymized/ --method base --engine ray --address auto --gpus-per-worker 1
  camouflage-video dataset raw/ anonymized/ ...   # rerun: skips what is done, retries what failed

The output tree mirrors the input tree (same names; .avi, .gif and raw streams become .mp4).
anonymized/camouflage_manifest.jsonl records every input: content hash, output, method, configuration
hash, status, frames, fallback frames, error, seconds. Exit code 1 when any input failed.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="camouflage-video",
        description="Anonymize faces in videos, images, image folders and streams.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "anonymize", help="anonymize a video, image, image folder or stream", epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("input", help="video file, image, image folder, or stream URL")
    run.add_argument(
        "-o", "--output", action="append", help="output path (default: <stem>_anonymized<ext>); repeatable"
    )
    add_run_options(run)
    add_live_options(run)
    run.set_defaults(func=cmd_anonymize)

    dataset = commands.add_parser(
        "dataset", help="anonymize a folder tree of videos and images, resumably", epilog=DATASET_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    dataset.add_argument("input", help="folder to read (recursively)")
    dataset.add_argument("output", help="folder to write: the same tree, plus the manifest")
    add_run_options(dataset)
    w = dataset.add_argument_group("dataset")
    w.add_argument(
        "--workers", type=int, help="worker processes (local, default 1) or Ray actors (default: fill the cluster)"
    )
    w.add_argument("--engine", choices=("local", "ray"), default="local", help="where the work runs (default: local)")
    w.add_argument("--address", help="Ray cluster address, e.g. auto or ray://head:10001 (default: start a local Ray)")
    w.add_argument("--gpus-per-worker", type=float, default=0.0, help="GPUs each Ray worker reserves (default: 0)")
    w.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each Ray worker reserves (default: 1)")
    w.add_argument("--export-tracks", action="store_true",
                   help="write <output>.tracks.csv per input: frame, time, track id, face box (no biometric data)")
    w.add_argument("--copy-other", action="store_true",
                   help="copy files that are not videos or images (labels...) into the output; default: list them")
    dataset.set_defaults(func=cmd_dataset)

    sample = commands.add_parser("sample", help="write a sample clip with a real face and audio")
    sample.add_argument("-o", "--output", default="sample.mp4", help="output file (default: sample.mp4)")
    sample.add_argument("--seconds", type=float, default=4.0, help="length in seconds (default: 4)")
    sample.set_defaults(func=cmd_sample)

    models = commands.add_parser(
        "models", help="list, download or check the models of a generative method",
        description="list: components and where each loads from; fetch: download them (to the HF cache, or "
        "into --models-dir); check: verify that the configuration loads offline (honours HF_HUB_OFFLINE).",
    )
    models.add_argument("action", choices=("list", "fetch", "check"))
    models.add_argument("preset", nargs="?", default="base", help="method whose models to handle (default: base)")
    _add_model_sources(models)
    models.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    models.set_defaults(func=cmd_models)

    from camouflage_video.training.light import add_parser as add_train_light

    add_train_light(commands)

    from camouflage_video.evaluation.command import add_evaluate_parser

    add_evaluate_parser(commands)
    return parser


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that anonymizes (``anonymize``, ``dataset``)."""
    from camouflage_video.config import ALL_METHODS
    from camouflage_video.config import AnonymizeConfig as defaults

    g = parser.add_argument_group("anonymization")
    g.add_argument("--method", choices=ALL_METHODS, default="blur",
                   help="how faces are anonymized (default: blur). blur and pixelate paint each face from its "
                   "surroundings, never from the face; pixelate keeps less margin than blur on faces under 40 px, "
                   "so prefer blur or solid there; base and light regenerate the scene (GPU)")
    g.add_argument("--mask-scale", type=float, default=1.3, help="grow face boxes by this factor (default: 1.3)")
    g.add_argument("--shape", choices=("ellipse", "box"), default="ellipse", help="mask shape (default: ellipse)")
    g.add_argument("--on-error", choices=("fallback", "fail"), default="fallback",
                   help="a frame that fails: pixelate it whole (default) or stop with nothing written")
    g.add_argument("--verify", action=argparse.BooleanOptionalAction, default=defaults.verify,
                   help="check every face track with a face recognizer against its original and obfuscate more "
                   "strongly (up to solid) those it still recognises; faces too small to check become solid "
                   "(default: on)")
    g.add_argument("--verify-margin", type=float, default=defaults.verify_margin, metavar="R",
                   help="highest identity recovery a checked face may keep; evaluate calls 0.5 a leak "
                   f"(default: {defaults.verify_margin})")
    g.add_argument("--verify-every", type=int, default=defaults.verify_every, metavar="N",
                   help=f"frames between two checks of one face track (default: {defaults.verify_every})")
    d = parser.add_argument_group("face detection and tracking")
    d.add_argument("--thresh", type=float, default=0.2, help="detection threshold (default: 0.2)")
    d.add_argument("--det-size", type=int, default=960,
                   help="long side of the detection input in pixels, 0 for full resolution (default: 960)")
    d.add_argument("--nms", type=float, default=0.3, help="overlap above which boxes merge (default: 0.3)")
    d.add_argument("--min-face", type=int, default=defaults.min_face, metavar="PX",
                   help="smallest face (px, brows to chin) found at any frame size: large frames are detected "
                   "finer, in windows, where det-size would shrink it below what the detector finds; 0 for one "
                   f"det-size pass only (faster, misses small faces in large frames) (default: {defaults.min_face})")
    d.add_argument("--hold-frames", type=int, default=10,
                   help="frames a lost face track stays obfuscated at its predicted place (default: 10)")
    d.add_argument("--no-track", action="store_true", help="detect frame by frame without tracking")
    d.add_argument("--look-ahead", type=float, default=defaults.look_ahead, metavar="S",
                   help="seconds of a file held back so each face is covered from the frame it first shows in, "
                   f"not only from its first detection; 0 disables; live streams never wait (default: "
                   f"{defaults.look_ahead:g})")
    d.add_argument("--detector-model", metavar="PATH", help="another CenterFace ONNX file")
    d.add_argument("--detector-backend", choices=("auto", "onnxruntime", "opencv"), default="auto",
                   help="runtime for the detector; both give the same boxes (default: auto, onnxruntime if installed)")
    d.add_argument("--detector-precision", choices=("auto", "int8", "fp32"), default=defaults.detector_precision,
                   help="int8: a quantized CenterFace built once and cached (about 2x faster on CPUs, same recall "
                   "measured, but boxes placed slightly differently); fp32: the original; auto: int8 where onnxruntime "
                   f"runs on the CPU (default: {defaults.detector_precision})")
    _add_generative_options(parser)
    e = parser.add_argument_group("output")
    e.add_argument("--no-audio", action="store_true", help="drop the audio (kept by default)")
    e.add_argument("--codec", help="video encoder (default: libx264; libvpx-vp9 for .webm)")
    e.add_argument("--crf", type=int, default=18, help="encoder quality, lower is better (default: 18)")
    e.add_argument("--preset", default="veryfast", help="x264/x265 preset (default: veryfast)")
    e.add_argument("--stats", metavar="PATH", help="write run statistics as JSON")
    v = parser.add_argument_group("messages")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar, errors only")
    v.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")


def add_live_options(parser: argparse.ArgumentParser) -> None:
    """Options of live inputs (RTSP/RTMP/HTTP/webcam) and restream outputs; see docs/live.md."""
    g = parser.add_argument_group("live streams")
    g.add_argument("--rtsp-transport", choices=("tcp", "udp"), default="tcp", help="RTSP transport (default: tcp)")
    g.add_argument("--open-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for a stream to connect (default: 10)")
    g.add_argument("--read-timeout", type=float, default=5.0, metavar="S",
                   help="seconds without data before a feed counts as lost (default: 5)")
    g.add_argument("--reconnect-delay", type=float, default=1.0, metavar="S",
                   help="first wait before reconnecting a lost feed; doubles each attempt (default: 1)")
    g.add_argument("--reconnect-max-delay", type=float, default=30.0, metavar="S",
                   help="longest wait between reconnection attempts (default: 30)")
    g.add_argument("--max-reconnects", type=int, metavar="N",
                   help="give up after N failed attempts in a row (default: retry forever)")
    g.add_argument("--input-option", action="append", default=[], metavar="KEY=VALUE",
                   help="FFmpeg demuxer/protocol option, e.g. video_size=1280x720 for a webcam; repeatable")
    g.add_argument("--gop", type=int, metavar="FRAMES", help="keyframe interval (default: 1 s for restreams)")
    g.add_argument("--stats-interval", type=float, default=5.0, metavar="S",
                   help="rewrite --stats every S seconds during a live run (default: 5)")


def source_options_from_args(args: argparse.Namespace) -> dict:
    from camouflage_video.live import Backoff

    options = {}
    for item in args.input_option:
        key, sep, value = item.partition("=")
        if not sep or not key:  # the value may be a secret (a token, a password): never echo it
            raise ConfigError(f"--input-option {key + '=***' if sep else '***'}: expected KEY=VALUE")
        options[key] = value
    return {
        "transport": args.rtsp_transport,
        "open_timeout": args.open_timeout,
        "read_timeout": args.read_timeout,
        "reconnect": Backoff(
            initial=args.reconnect_delay, maximum=args.reconnect_max_delay, attempts=args.max_reconnects
        ),
        "input_options": options,
    }


def _pair(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name.strip(), value.strip()


def _add_model_sources(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    m = parser.add_argument_group("generative methods (--method base, light) and their models")
    m.add_argument("--config", metavar="TOML", help="TOML file with model sources and generation options")
    m.add_argument("--models-dir", metavar="DIR", help="look every hub model up as DIR/<repo name> (offline use)")
    m.add_argument("--model", metavar="NAME=SPEC", type=_pair, action="append",
                   help="a component's hub id[@revision], folder or .safetensors file; repeatable "
                   "(names: camouflage-video models list)")
    m.add_argument("--identity-model", metavar="SPEC",
                   help="identity ControlNet checkpoint (default: the public tile ControlNet, an approximation)")
    m.add_argument("--t2i-adapter", metavar="SPEC",
                   help="--method light: attribute T2I-Adapter (a train-light output folder; no public checkpoint)")
    m.add_argument("--prompt", help="prompt for every frame (default: a caption of each scene)")
    return m


def _add_generative_options(parser: argparse.ArgumentParser) -> None:
    """Flags of ``--method base``/``light``; unset flags stay None so the TOML config and defaults apply."""
    from camouflage_video.pipelines.temporal import TemporalOptions

    t = TemporalOptions()
    g = _add_model_sources(parser)
    g.add_argument("--negative-prompt", help="negative prompt (default: low-quality and cartoon terms)")
    g.add_argument("--steps", type=int, help="denoising steps of a keyframe (default: 25)")
    g.add_argument("--guidance-scale", type=float, help="classifier-free guidance (default: 7)")
    g.add_argument("--anonymization-scale", type=float,
                   help="push away from the original identity, 0 disables (default: 1.0)")
    g.add_argument("--resolution", type=int,
                   help="short side of the generation size, multiple of 8 (default: 768 base, 512 light)")
    g.add_argument("--seed", type=int, help="seed of the fixed noise (default: 0)")
    g.add_argument("--scheduler", choices=("dpmpp-sde-karras", "dpmpp-2m-sde-karras"),
                   help="sampler (default: dpmpp-sde-karras)")
    g.add_argument("--control-scale", metavar="KIND=VALUE", type=_pair, action="append",
                   help="strength of one ControlNet (depth, normalbae, seg, openpose, lineart); 0 drops it")
    g.add_argument("--annotate-every", type=int, help="run the control-map annotators every k-th frame (default: 1)")
    g.add_argument("--reuse-strength", type=float,
                   help=f"share of the steps re-run from the previous frame's latent, 1 disables reuse "
                   f"(default: {t.reuse_strength})")
    g.add_argument("--keyframe-every", type=int, help=f"full denoising every N frames (default: {t.keyframe_every})")
    g.add_argument("--scene-cut-threshold", type=float,
                   help="content change that starts a new scene and a keyframe, 0 disables "
                   f"(default: {t.scene_cut_threshold:g})")
    g.add_argument("--flow-warp", action=argparse.BooleanOptionalAction,
                   help="warp the reused latent with the optical flow of the original frames (default: on)")
    g.add_argument("--device", help="auto, cpu, cuda or cuda:N (default: auto)")
    g.add_argument("--dtype", choices=("auto", "float16", "bfloat16", "float32"),
                   help="model precision (default: float16 on CUDA, float32 on CPU)")
    g.add_argument("--batch-size", type=int, help="keyframes generated together on the GPU (default: 1)")
    g.add_argument("--adapter-scale", type=float, help="--method light: weight of the attribute map (default: 1.0)")
    g.add_argument("--ip-adapter-scale", type=float,
                   help="--method light: weight of the image prompt, 0 disables the IP-Adapter (default: 0.7)")
    g.add_argument("--ip-adapter-faces", choices=("blur", "keep"),
                   help="--method light: faces in the IP-Adapter's view of the frame (default: blur)")
    g.add_argument("--attribute-smoothing", choices=("mean", "ema", "off"),
                   help="--method light: aggregate each track's attributes over its history (default: mean)")
    g.add_argument("--attribute-window", type=int,
                   help="--method light: frames the mean runs over, 0 for the whole track (default: 0)")
    g.add_argument("--face-parsing", action=argparse.BooleanOptionalAction,
                   help="--method light: shape attribute regions with pyfacer's face parser (default: off)")


GENERATIVE_FLAGS = (
    "config", "models_dir", "prompt", "negative_prompt", "steps", "guidance_scale", "anonymization_scale",
    "resolution", "seed", "scheduler", "annotate_every", "reuse_strength", "keyframe_every",
    "scene_cut_threshold", "flow_warp", "device", "dtype", "batch_size",
    "adapter_scale", "ip_adapter_scale", "ip_adapter_faces", "attribute_smoothing", "attribute_window", "face_parsing",
)


def _generative_from_args(args: argparse.Namespace) -> dict:
    """The flags that were given, as ``AnonymizeConfig.generative`` (names in snake_case)."""
    options = {name: getattr(args, name) for name in GENERATIVE_FLAGS if getattr(args, name, None) is not None}
    sources = dict(getattr(args, "model", None) or [])
    if getattr(args, "identity_model", None):
        sources["identity"] = args.identity_model
    if getattr(args, "t2i_adapter", None):
        sources["t2i-adapter"] = args.t2i_adapter
    if sources:
        options["models"] = sources
    scales = {}
    for kind, value in getattr(args, "control_scale", None) or []:
        try:
            scales[kind] = float(value)
        except ValueError as exc:
            raise ConfigError(f"--control-scale {kind}={value}: not a number") from exc
    if scales:
        options["control_scales"] = scales
    return options


def config_from_args(args: argparse.Namespace):  # noqa: ANN201 - AnonymizeConfig, imported lazily
    from camouflage_video.config import AnonymizeConfig
    from camouflage_video.sinks.video import EncoderOptions

    return AnonymizeConfig(
        method=args.method,
        thresh=args.thresh,
        det_size=args.det_size,
        nms=args.nms,
        min_face=args.min_face,
        mask_scale=args.mask_scale,
        shape=args.shape,
        track=not args.no_track,
        hold_frames=args.hold_frames,
        on_error=args.on_error,
        audio=not args.no_audio,
        encoder=EncoderOptions(codec=args.codec, crf=args.crf, preset=args.preset, gop=getattr(args, "gop", None)),
        detector_model=args.detector_model,
        detector_backend=args.detector_backend,
        detector_precision=args.detector_precision,
        generative=_generative_from_args(args),
        look_ahead=args.look_ahead,
        verify=args.verify,
        verify_margin=args.verify_margin,
        verify_every=args.verify_every,
    )


def cmd_anonymize(args: argparse.Namespace) -> int:
    from camouflage_video.api import anonymize

    stats = anonymize(
        args.input,
        args.output,
        config_from_args(args),
        progress=False if args.quiet else None,
        stats_path=args.stats,
        source_options=source_options_from_args(args),
        stats_interval=args.stats_interval,
    )
    if not args.quiet:
        outputs = ", ".join(o.get("uri", "?") for o in stats.outputs)
        extra = f", {stats.fallback_frames} fallback" if stats.fallback_frames else ""
        extra += f", {stats.corrupt_frames} corrupt skipped" if stats.corrupt_frames else ""
        extra += f", {len(stats.not_read)} media files not read (see the warning)" if stats.not_read else ""
        if stats.live:
            extra += f", {stats.live['frames_dropped']} dropped as stale, {stats.live['reconnects']} reconnects"
        print(f"{outputs}: {stats.frames_out} frames, {stats.faces_detected} faces{extra}", file=sys.stderr)
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from pathlib import Path

    from camouflage_video.dataset import DatasetOptions, run_dataset
    from camouflage_video.dataset.manifest import RESERVED
    from camouflage_video.preflight import Write, check_writes

    if args.stats:  # before any work: a stats file over the manifest lost the record of a finished dataset
        kept = {Path(args.output) / name: f"the dataset's own {name}" for name in RESERVED}
        check_writes([Write("--stats file", Path(args.stats))], reads=[args.input], reserved=kept)

    options = DatasetOptions(
        engine=args.engine,
        workers=args.workers,
        address=args.address,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        export_tracks=args.export_tracks,
        copy_other=args.copy_other,
        progress=False if args.quiet else None,
    )
    summary = run_dataset(args.input, args.output, config_from_args(args), options)
    if args.stats:
        summary.write(args.stats)
    if not args.quiet or not summary.ok:
        for name, error in summary.failures[:20]:
            print(f"  failed: {name}: {error}", file=sys.stderr)
        if len(summary.failures) > 20:
            print(f"  ... and {len(summary.failures) - 20} more (see the manifest)", file=sys.stderr)
        extra = f", {summary.fallback_frames} fallback frames" if summary.fallback_frames else ""
        others = ""
        if summary.other:
            others = f", {summary.other} other files ({summary.copied} copied"
            others += f", {len(summary.not_copied)} not copied: see the manifest" if summary.not_copied else ""
            others += ")"
        if summary.folder_links:
            others += f", {len(summary.folder_links)} linked folders not followed"
        print(
            f"{summary.output}: {summary.processed} anonymized, {summary.skipped} already done, "
            f"{summary.failed} failed of {summary.media} videos and images ({summary.frames} frames{extra}){others}; "
            f"manifest {summary.manifest}",
            file=sys.stderr,
        )
    if summary.interrupted:
        print("camouflage-video: interrupted; finished files are recorded, rerun to resume", file=sys.stderr)
        return 130
    return 0 if summary.ok else 1


def cmd_sample(args: argparse.Namespace) -> int:
    from camouflage_video.samples import make_sample_video

    print(make_sample_video(args.output, seconds=args.seconds), file=sys.stderr)
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from camouflage_video import methods, models

    names, specs, models_dir = methods.selected_components(args.preset, _generative_from_args(args))
    sources = models.resolve_all(names, specs, models_dir)
    if args.action == "list":
        width = max(len(n) for n in names)
        for name in names:
            note = models.COMPONENTS[name].note
            print(f"{name:<{width}}  {sources[name].describe()}" + (f"  # {note}" if note else ""))
        return 0
    results = models.fetch(sources) if args.action == "fetch" else models.check(sources)
    width = max(len(r.component) for r in results)
    for r in results:
        print(f"{'ok' if r.ok else 'MISSING':<7}  {r.component:<{width}}  {r.source}  {r.detail}")
    missing = [r.component for r in results if not r.ok]
    if missing:
        print(f"camouflage-video: cannot load offline: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


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
    previous = _install_signal_handlers() if _in_main_thread() else {}
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print("camouflage-video: interrupted; what was processed has been saved", file=sys.stderr)
        return 130
    except CamouflageError as exc:
        if debug:
            logger.exception("failed")
        print(f"camouflage-video: error: {redact_url(str(exc))}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - one line for the user; --debug shows the traceback
        if debug:
            logger.exception("failed")  # through the RedactingFilter: a bare traceback would quote secrets
        print(f"camouflage-video: error: {type(exc).__name__}: {redact_url(str(exc))}", file=sys.stderr)
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
