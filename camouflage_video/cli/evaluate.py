"""``camouflage-video evaluate``: the subcommand's options and what it prints. Heavy imports stay in the handler."""

from __future__ import annotations

import argparse
import sys

EXIT_LEAK = 3  # distinct from 1 (error) and 2 (usage), so a pipeline can tell a leak from a failure

EXAMPLES = """examples:
  camouflage-video evaluate clip.mp4 clip_anonymized.mp4 --report report.html --json metrics.json
  camouflage-video evaluate raw/ anonymized/ --report report.html --fail-on-leak
  camouflage-video evaluate photo.jpg photo_anonymized.jpg --gallery faces/   # distractor identities for rank-1
  camouflage-video evaluate people/ people_anonymized/ --attack-gallery candidates/   # attacker who owns the tool

exit status: 0 done, 1 error, 2 bad usage, 3 with --fail-on-leak: a leak was found, or part of the anonymized
  side could not be checked (pictures with no original, faces where the original has none), 130 interrupted
"""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``evaluate`` subcommand to the CLI's subparsers."""
    from camouflage_video.evaluation.pairing import PAIR_BY
    from camouflage_video.evaluation.recognizers import RECOGNIZERS
    from camouflage_video.evaluation.records import LEAK_RULES
    from camouflage_video.pipelines.classic import METHODS

    p = commands.add_parser(
        "evaluate",
        help="measure re-identification risk, leaks, temporal consistency and fidelity of an anonymized output",
        description="Compare an anonymized video, image or image folder with its original and report how well "
        "identities are hidden (face recognition as the attacker) and what else changed.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("original", help="the input that was anonymized (video, image or image folder)")
    p.add_argument("anonymized", help="the anonymized output (same kind; folders paired by relative path)")
    o = p.add_argument_group("outputs")
    o.add_argument("--report", metavar="HTML", help="write a self-contained HTML report")
    o.add_argument("--json", metavar="PATH", dest="json_path", help="write every measure as JSON")
    o.add_argument(
        "--fail-on-leak",
        action="store_true",
        help=f"exit with status {EXIT_LEAK} if any anonymized face is re-identified (see --leak-rule), at its place "
        "or elsewhere in the frame, or if part of the anonymized side could not be checked",
    )
    o.add_argument("--no-thumbnails", action="store_true", help="no face pictures in the report (to share it)")
    o.add_argument("--run-stats", metavar="JSON",
                   help="the --stats file of the anonymize run: the report also shows its verification checks, "
                   "escalations and fallback frames")
    r = p.add_argument_group("recognition")
    r.add_argument(
        "--recognizer",
        choices=sorted(RECOGNIZERS),
        default="dlib",
        help="face recognizer playing the attacker (default: dlib, offline)",
    )
    r.add_argument("--recognizer-model", metavar="PATH", help="model file or folder of the recognizer")
    r.add_argument(
        "--match-threshold",
        type=float,
        metavar="DIST",
        help="distance below which faces match (default: the recognizer's standard, 0.6 for dlib)",
    )
    r.add_argument(
        "--leak-rule",
        choices=LEAK_RULES,
        default="null",
        help="null: a match is a leak only if the face region recovers the identity, measured against the same "
        "frame with the face blacked out (context alone is no leak); threshold: every match is a leak (default: null)",
    )
    r.add_argument(
        "--min-recovery",
        type=float,
        default=0.5,
        metavar="SHARE",
        help="share of the way from its null to the original a matching face must cover to leak (default: 0.5)",
    )
    r.add_argument(
        "--null-scale",
        type=float,
        default=1.3,
        metavar="SCALE",
        help="growth of the face box blacked out in the null version; use the anonymizer's --mask-scale (default: 1.3)",
    )
    r.add_argument(
        "--min-face-size",
        type=int,
        metavar="PX",
        help="face height under which the recognizer is reported unreliable (default: the recognizer's, 20 for dlib)",
    )
    r.add_argument("--gallery", metavar="FOLDER", help="photos of other people added as distractor identities")
    r.add_argument(
        "--attribute-model",
        metavar="PATH",
        help="facer FaRL CelebA attribute weights (.safetensors) for attribute agreement",
    )
    a = p.add_argument_group(
        "tool-aware attack",
        "An attacker who owns the tool anonymizes candidate photos of known people the same way and searches "
        "each anonymized face among them (rank-1, against chance and against solid fill as the floor). "
        "Identities: identities.csv (file,identity[,source]) in a folder, else file names (kit_harington_2.jpg "
        "is kit_harington).",
    )
    a.add_argument("--attack-gallery", metavar="DIR", help="candidate photos of known people, one face each")
    a.add_argument(
        "--attack-method",
        choices=METHODS,
        default="blur",
        help="how the candidates are anonymized: the method the output was made with (default: blur)",
    )
    a.add_argument(
        "--attack-mask-scale",
        type=float,
        metavar="SCALE",
        help="--mask-scale the output was made with (default: --null-scale)",
    )
    a.add_argument(
        "--attack-anonymized",
        metavar="DIR",
        help="the candidates already anonymized (same relative paths), by any method or tool",
    )
    a.add_argument(
        "--attack-identities",
        metavar="CSV",
        help="who each candidate is (default: the gallery's identities.csv, else file names)",
    )
    a.add_argument(
        "--identities",
        metavar="CSV",
        help="who the largest face of each original image is (default: the original folder's identities.csv, "
        "else file names)",
    )
    d = p.add_argument_group("analysis")
    d.add_argument(
        "--step", type=int, default=1, metavar="N", help="analyse every Nth video frame (default: 1, every frame)"
    )
    d.add_argument("--thresh", type=float, default=0.5, help="face detection threshold in the original (default: 0.5)")
    d.add_argument(
        "--det-size",
        type=int,
        default=960,
        help="long side of the detection input, 0 for full resolution (default: 960)",
    )
    d.add_argument(
        "--mask-scale",
        type=float,
        default=1.5,
        help="grow face boxes by this factor before measuring fidelity outside them (default: 1.5)",
    )
    d.add_argument("--pair-by", choices=PAIR_BY, default="time", help="pair video frames by timestamp or position")
    v = p.add_argument_group("messages")
    v.add_argument("-q", "--quiet", action="store_true", help="no progress bar, errors only")
    v.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from camouflage_video.evaluation import EvaluationConfig, evaluate

    config = EvaluationConfig(
        step=args.step,
        thresh=args.thresh,
        det_size=args.det_size,
        recognizer=args.recognizer,
        recognizer_model=args.recognizer_model,
        threshold=args.match_threshold,
        leak_rule=args.leak_rule,
        min_recovery=args.min_recovery,
        null_scale=args.null_scale,
        min_face_size=args.min_face_size,
        pair_by=args.pair_by,
        mask_scale=args.mask_scale,
        gallery=args.gallery,
        attribute_model=args.attribute_model,
        attack_gallery=args.attack_gallery,
        attack_method=args.attack_method,
        attack_mask_scale=args.attack_mask_scale,
        attack_anonymized=args.attack_anonymized,
        attack_identities=args.attack_identities,
        identities=args.identities,
        thumbnails=not args.no_thumbnails,
    )
    result = evaluate(
        args.original,
        args.anonymized,
        config,
        report=args.report,
        json_path=args.json_path,
        progress=False if args.quiet else None,
        run_stats=args.run_stats,
    )
    s = result.summary()
    if not args.quiet:
        print(summary_line(s), file=sys.stderr)
        for path in (args.report, args.json_path):
            if path:
                print(f"wrote {path}", file=sys.stderr)
    failure = _gate(s, result.frames) if args.fail_on_leak else None
    if failure is not None:
        print(f"camouflage-video: {failure}", file=sys.stderr)
        return EXIT_LEAK
    return 0


def _gate(s: dict, frames: dict) -> str | None:
    """Why ``--fail-on-leak`` fails the evaluation, or ``None``: a face re-identified at its place or elsewhere
    in the frame, pictures of the anonymized side that no original checked, or faces on the anonymized side
    where the original shows none (the two given the wrong way round, or not the same footage)."""
    if s["verdict"] == "leak":
        parts = []
        if s["leaks"]:
            parts.append(f"{s['leaks']} anonymized faces are re-identified (frames {_frames(s['leak_frames'])})")
        if s["displaced_leak_frames"]:
            parts.append("a face away from every original face is an original's person (frames "
                         f"{_frames(s['displaced_leak_frames'])})")
        if s["pictures_beside_the_video"]:
            beside = "; ".join(s["pictures_beside_the_video"][:3])
            parts.append(f"the anonymized file holds pictures beside its video ({beside})")
        turned = ", ".join(f"{how} in {count}" for how, count in s["turned_frames"].items())
        return "leak: " + "; ".join(parts) + (f" (the anonymized pictures are the original's {turned}: judged "
                                              "turned back)" if turned else "")
    unchecked = frames.get("unpaired_anonymized") or 0
    if unchecked:
        kind = "frames" if frames.get("kind") == "video" else "pictures"
        return (f"not checked: {unchecked} anonymized {kind} have no original to compare with; "
                "evaluate each output against its own input")
    # A detector fires now and then on a shirt beside a blurred face; the original given for the anonymized
    # version shows faces in most of its pictures.
    analysed = frames.get("analysed") or 0
    if s["verdict"] == "no-faces" and analysed and s["frames_with_extra_faces"] * 2 >= analysed:
        return (f"not checked: the anonymized side shows faces in {s['frames_with_extra_faces']} of {analysed} "
                "pictures where the original shows none (are the two given the wrong way round?)")
    return None


def summary_line(s: dict) -> str:
    """One line for the terminal."""

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{100 * v:.1f}%"

    below = ""
    if s["calibration"].get("leak_rule") == "null":
        below = f" ({pct(s['threshold_reidentification_rate'])} below the threshold alone)"
    small = s["small_faces"]
    small_text = f", {small['faces']} under {small['min_face_size']} px" if small["faces"] else ""
    attack = s.get("attack")
    attack_text = ""
    if attack:
        attack_text = (
            f"; tool-aware attack ({attack['method']}): rank-1 {pct(attack['rank1_rate'])} of {attack['probes']} "
            f"probes, chance {pct(attack['chance'])}, solid {pct(attack['solid_rank1_rate'])} ({attack['verdict']})"
        )
    return (
        f"{s['verdict'].upper()}: {s['faces']} faces{small_text}, re-identification "
        f"{pct(s['reidentification_rate'])}{below}, rank-1 {pct(s['rank1_rate'])} of {s['gallery_identities']} "
        f"identities, {s['leaks']} leaks, still detected {pct(s['detected_rate'])}{attack_text}"
    )


def _frames(frames: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(f) for f in frames[:limit])
    return shown + (f", ... ({len(frames)} in all)" if len(frames) > limit else "")
