"""The sections of the evaluation report, each rendered from the result as HTML text (``report`` joins them)."""

from __future__ import annotations

import base64
import html

from camouflage_video.evaluation.plots import svg_histogram, svg_lines
from camouflage_video.evaluation.records import EvaluationResult, FaceCase

COLORS = ("#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
ORIGINAL_COLOR, ANONYMIZED_COLOR, NULL_COLOR = "#1f77b4", "#d62728", "#7f7f7f"
MAX_TIMELINES = 10
MAX_LEAK_ROWS = 300

def _fmt(value: object, digits: int = 3, percent: bool = False) -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, float):
        if percent:
            return f"{100 * value:.1f}%"
        return f"{value:.{digits}f}"
    return html.escape(str(value))


def summary_section(result: EvaluationResult, s: dict) -> str:
    warp, stability = s["warping_error"], s["identity_stability"]
    fidelity, attributes, frames = s["fidelity_outside_faces"], s["attributes"], result.frames
    reid = s["reidentification_rate"]
    reid_class = "bad" if reid else "good" if reid is not None else ""
    leak_class = "bad" if s["leaks"] else "good"
    sampled = f" (one frame in {frames['step']})" if frames["step"] > 1 else ""
    one_identity = " One identity makes this uninformative: add --gallery." if s["gallery_identities"] == 1 else ""
    rank_note = (
        f"Anonymized face searched in a gallery of {s['gallery_identities']} identities; chance is "
        f"{_fmt(s['rank1_chance'], percent=True)}.{one_identity}"
    )
    leaks = f"{s['leaks']} faces in {len(s['leak_identities'])} identities, {len(s['leak_frames'])} frames"
    steady = (
        f"{_fmt(stability['anonymized_same_identity_rate'], percent=True)} of consecutive anonymized faces "
        f"match (mean step {_fmt(stability['anonymized_mean_step_distance'])}; original "
        f"{_fmt(stability['original_mean_step_distance'])})"
    )
    flicker = (
        f"original {_fmt(warp['original'], 5)}, anonymized {_fmt(warp['anonymized'], 5)}; "
        f"faces: {_fmt(warp['original_faces'], 5)} vs {_fmt(warp['anonymized_faces'], 5)}"
    )
    if attributes.get("available"):
        agreement, agreement_note = _fmt(attributes.get("agreement"), percent=True), attributes.get("model", "")
    else:
        agreement, agreement_note = "not measured", attributes.get("reason", "")
    calibration, small = s["calibration"], s["small_faces"]
    null_rule = calibration.get("leak_rule") == "null"
    if null_rule:
        reid_note = (
            f"Anonymized faces within {result.threshold:g} of their original (the match threshold) whose face "
            f"region recovers at least {calibration['min_recovery']:g} of the way from their null version (the "
            "same frame with the face blacked out) to the original: the face itself gives the identity away."
        )
    else:
        reid_note = f"Share of anonymized faces within {result.threshold:g} of their original (the match threshold)."
    rows = [
        (
            "Frames analysed",
            f"{frames['analysed']} of {frames['paired']} paired{sampled}",
            "Unpaired frames are listed under Details.",
        ),
        ("Faces analysed", f"{s['faces']} in {s['identities']} identities", "Found by CenterFace in the original."),
        ("Re-identification rate", f'<span class="{reid_class}">{_fmt(reid, percent=True)}</span>', reid_note),
    ]
    if null_rule:
        rows.append(
            (
                "Below the threshold alone",
                _fmt(s["threshold_reidentification_rate"], percent=True),
                f"Every match, including those context explains: with the face blacked out, "
                f"{s['context_matches']} of {s['faces']} faces still fall below {result.threshold:g} (median null "
                f"distance {_fmt(s['null_distance']['median'])}). Hair, contour and background are not hidden by "
                "a face anonymizer.",
            )
        )
    if small["faces"]:
        rows.append(
            (
                f"Faces under {small['min_face_size']} px",
                f'<span class="bad">{small["faces"]}</span>' if small["leaks"] else str(small["faces"]),
                f"Too small for {html.escape(result.recognizer['name'])} to tell people apart reliably: their "
                f"distances are noisy ({small['matches']} below the threshold, {small['leaks']} re-identified). "
                "They are judged like the others; check their thumbnails.",
            )
        )
    rows += [
        ("Mean distance to original", _fmt(s["distance"]["mean"]), "Higher is better; above the threshold no match."),
        ("Rank-1 identification", _fmt(s["rank1_rate"], percent=True), rank_note),
        ("Leaks", f'<span class="{leak_class}">{leaks}</span>', "See the leak audit."),
        (
            "Still detected as faces",
            _fmt(s["detected_rate"], percent=True),
            "Anonymized faces CenterFace still finds (utility for downstream detectors).",
        ),
        ("Identity stability", steady, "One fake identity should persist along a track."),
        ("Flow-warping error", flicker, "Lai et al. 2018 with the original's optical flow; lower is steadier."),
        (
            "Outside faces",
            f"PSNR {_fmt(fidelity.get('psnr_db'), 2)} dB, SSIM {_fmt(fidelity.get('ssim'), 4)}",
            "Pixels outside the original face boxes should be unchanged (PSNR capped at 100 dB).",
        ),
        ("Attribute agreement", agreement, html.escape(agreement_note)),
    ]
    body = "".join(f"<tr><th>{name}</th><td>{value}</td><td class=note>{note}</td></tr>" for name, value, note in rows)
    return f'<section id="summary"><h2>Summary</h2><table class="summary">{body}</table></section>'


def attack_section(result: EvaluationResult) -> str:
    a = result.attack
    if not a:
        return ""
    verdict = {
        "above-floor": ('<p class="bad">The attacker identifies people more often than chance or solid fill allow '
                        f"(p = {a.get('p_value_above_floor', 1):.3f}): the obfuscation keeps identity.</p>"),
        "at-floor": '<p class="good">The attacker does no better than chance or solid fill.</p>',
        "no-probes": '<p class="note">No labelled face has a candidate of the same identity: nothing to attack.</p>',
    }[a["verdict"]]
    rows = "".join(
        f"<tr><td>{label}</td><td class=num>{_fmt(a[key], percent=True)}</td></tr>"
        for label, key in (
            (f"anonymized with {html.escape(str(a['method']))} (the attack)", "rank1_rate"),
            ("solid fill on both sides (the floor)", "solid_rank1_rate"),
            ("chance (1 / identities)", "chance"),
            ("unanonymized (what the attack does without the tool)", "clear_rank1_rate"),
        )
    )
    return (
        '<section id="attack"><h2>Attacker who owns the tool</h2>'
        f'<p class="note">{a["candidates"]} candidate photos of {a["identities"]} people, anonymized the same way; '
        f"each of {a['probes']} labelled anonymized faces searched among them (dlib rank-1).</p>{verdict}"
        f"<table><tr><th>Rank-1 identification</th><th>Rate</th></tr>{rows}</table></section>"
    )


def run_section(result: EvaluationResult) -> str:
    run = result.run
    if not run:
        return ""
    rows = [
        ("method", html.escape(str(run["method"]))),
        ("frames written", _fmt(run["frames_out"])),
        ("fallback frames (pixelated whole after a failure)", _fmt(run["fallback_frames"])),
        ("faces carried back before their first detection", _fmt(run["backfilled_boxes"])),
    ]
    verify = run.get("verify")
    if verify:
        levels = ", ".join(f"{html.escape(str(k))}: {v}" for k, v in (verify.get("faces_by_level") or {}).items())
        rows += [
            (f"identity checks (margin {_fmt(verify['margin'])})", _fmt(verify["checks"])),
            ("cleared", _fmt(verify["cleared"])),
            ("escalations (stronger obfuscation)", _fmt(verify["escalations"])),
            ("tracks escalated", _fmt(verify["tracks_escalated"])),
            ("faces too small to check (filled solid)", _fmt(verify["too_small"])),
            ("recognizer failures (filled solid)", _fmt(verify["errors"])),
            ("faces written at each level", levels or "none"),
        ]
    else:
        rows.append(("run-time identity verification", "off"))
    rows += _redaction_rows(run.get("redaction"))
    body = "".join(f"<tr><th>{name}</th><td>{value}</td></tr>" for name, value in rows)
    return f'<section id="run"><h2>What the anonymizing run did</h2><table class="summary">{body}</table></section>'


def _redaction_rows(redaction: dict | None) -> list[tuple[str, str]]:
    """Which tracks the run kept visible on purpose (--keep-person, --only-person, a review) and where."""
    if not redaction:
        return []
    mode = {"keep": "--keep-person: only matching faces left visible",
            "only": "--only-person: only matching faces anonymized, every other face left visible"}
    rows = [("redaction", html.escape(mode.get(redaction.get("mode"), "every face anonymized unless reviewed kept"))),
            ("faces left visible on purpose / anonymized",
             f"{_fmt(redaction.get('faces_kept'))} / {_fmt(redaction.get('faces_removed'))}")]
    for track, ranges in (redaction.get("tracks") or {}).items():
        parts = [f"{name} in frames {', '.join(f'{a}-{b}' if a != b else str(a) for a, b in spans)}"
                 for name, spans in ranges.items()]
        rows.append((f"track {html.escape(str(track))}", html.escape("; ".join(parts))))
    for region, frames in (redaction.get("region_frames") or {}).items():
        rows.append((f"region {html.escape(str(region))}", f"covered in {_fmt(frames)} frames"))
    return rows


def reid_section(result: EvaluationResult, s: dict) -> str:
    distances = [f.distance for f in result.faces]
    if not distances:
        return '<section id="reidentification"><h2>Re-identification</h2><p>No faces.</p></section>'
    nulls = [f.null_distance for f in result.faces if f.null_distance is not None]
    top = max(1.2, result.threshold * 2, max(distances + nulls) * 1.05)
    series = [("anonymized", distances, ANONYMIZED_COLOR)]
    if nulls:
        series.append(("null: face blacked out", nulls, NULL_COLOR))
    figure = svg_histogram(
        series,
        x_range=(0.0, top),
        bins=30,
        threshold=result.threshold,
        x_label="recognizer distance",
        title="Distance between each anonymized face and its original",
    )
    caption = (
        f"{len(distances)} faces; left of the dashed line ({result.threshold:g}) the recognizer takes the "
        f"anonymized face for the original person."
    )
    if nulls:
        caption += (
            " Grey: the same frames with each face region filled black, what context alone gives. Where the "
            "grey bars reach left of the line, the recognizer matches faces without looking at them, and only "
            "a face whose region recovers the identity (below) is re-identified."
        )
    rows = "".join(
        f"<tr><td>{b['size']} px</td><td class=num>{b['faces']}</td>"
        f"<td class=num>{_fmt(b['reidentification_rate'], percent=True)}</td>"
        f"<td class=num>{_fmt(b['threshold_reidentification_rate'], percent=True)}</td>"
        f"<td class=num>{_fmt(b['distance_median'])}</td><td class=num>{_fmt(b['null_distance_median'])}</td></tr>"
        for b in s["by_size"]
    )
    table = (
        "<table id='by-size'><tr><th>Face height</th><th>Faces</th><th>Re-identified</th><th>Below threshold</th>"
        f"<th>Median distance</th><th>Median null distance</th></tr>{rows}</table>"
    )
    return (
        f'<section id="reidentification"><h2>Re-identification</h2>'
        f'<figure class="plot" id="fig-distance-histogram">{figure}<figcaption>{caption}</figcaption></figure>'
        f"{_recovery_figure(result)}<h3>By face size</h3>{table}</section>"
    )


def _recovery_figure(result: EvaluationResult) -> str:
    recoveries = [f.recovery for f in result.faces if f.recovery is not None]
    if not recoveries:
        return ""
    minimum = float(result.calibration["min_recovery"])
    matches = [f.recovery for f in result.faces if f.recovery is not None and f.match]
    svg = svg_histogram(
        [("all faces", recoveries, NULL_COLOR), ("matches", matches, ANONYMIZED_COLOR)],
        x_range=(min(-0.25, min(recoveries)), max(1.25, max(recoveries))),
        bins=30,
        threshold=minimum,
        threshold_text=f"leak from {minimum:g}",
        x_label="identity recovered by the face region (0: no more than its null, 1: as the original)",
        title="Identity recovered by each face region",
    )
    caption = (
        "Projection of the anonymized face's embedding on the line from its null version to the original. "
        "A solid fill sits at 0, an unchanged face near 1; recognizer noise on small faces spreads distances "
        f"but barely moves this measure. Faces below the match threshold and right of {minimum:g} are leaks."
    )
    return f'<figure class="plot" id="fig-recovery">{svg}<figcaption>{caption}</figcaption></figure>'


def tracks_section(result: EvaluationResult) -> str:
    tracks = result.tracks()
    if not tracks:
        return ""
    kind = result.frames.get("kind")
    figure = ""
    if kind == "video":
        by_identity: dict[int, list] = {}
        for face in result.faces:
            by_identity.setdefault(face.identity, []).append(face)
        longest = sorted(by_identity.items(), key=lambda item: (-len(item[1]), item[0]))[:MAX_TIMELINES]
        series = [
            (f"track {identity}", [f.frame for f in faces], [f.distance for f in faces], COLORS[i % len(COLORS)])
            for i, (identity, faces) in enumerate(longest)
        ]
        svg = svg_lines(
            series,
            threshold=result.threshold,
            x_label="frame",
            y_label="distance to original",
            title="Distance to the original along each track",
            y_min=0.0,
        )
        more = (
            f" The {MAX_TIMELINES} longest of {len(by_identity)} tracks are drawn."
            if len(by_identity) > MAX_TIMELINES
            else ""
        )
        figure = (
            f'<figure class="plot" id="fig-track-timelines">{svg}<figcaption>Each line is one face track; '
            f"points under the dashed line match their original (the leak audit lists those that leak).{more}"
            "</figcaption></figure>"
        )
    rows = []
    for t in tracks[:500]:
        label = html.escape(t["key"]) if kind != "video" and t["key"] else f"track {t['identity']}"
        leak_class = "bad" if t["leaks"] else ""
        frames = f"{t['first_frame']}&ndash;{t['last_frame']}"
        numbers = [
            t["faces"],
            frames,
            f'<span class="{leak_class}">{t["leaks"]}</span>',
            _fmt(t["distance"]["mean"]),
            _fmt(t["distance"]["min"]),
            _fmt(t["null_distance"]["mean"]),
            _fmt(t["detected_rate"], percent=True),
            _fmt(t["stable_rate_anonymized"], percent=True),
        ]
        rows.append(f"<tr><td>{label}</td>" + "".join(f"<td class=num>{n}</td>" for n in numbers) + "</tr>")
    more = f'<p class="note">{len(tracks) - 500} more in the JSON.</p>' if len(tracks) > 500 else ""
    table = (
        "<table id='tracks-table'><tr><th>Identity</th><th>Faces</th><th>Frames</th><th>Leaks</th><th>Mean dist.</th>"
        "<th>Min dist.</th><th>Mean null dist.</th><th>Detected</th><th>Stable</th></tr>"
        + "".join(rows)
        + "</table>"
        + more
    )
    title = "Per-track timelines" if kind == "video" else "Per-face results"
    return f'<section id="tracks"><h2>{title}</h2>{figure}{table}</section>'


def _img(data: bytes, alt: str) -> str:
    if not data:
        return '<span class="thumb-missing"></span>'
    return f'<img alt="{html.escape(alt)}" src="data:image/jpeg;base64,{base64.b64encode(data).decode("ascii")}">'


def _case_html(case: FaceCase, kind: str | None) -> str:
    r = case.record
    where = html.escape(r.key) if r.key and kind != "video" else f"frame {r.frame}"
    if r.time is not None:
        where += f" ({r.time:.2f} s)"
    who = f"track {r.identity}" if kind == "video" and r.identity >= 0 else "face"
    if r.leak:
        status = '<span class="bad">leak</span>'
    elif r.match:
        status = '<span class="good">match explained by context</span>'
    else:
        status = '<span class="good">no match</span>'
    rank = f", rank {r.rank}" if r.rank is not None else ""
    null = f", null {r.null_distance:.3f}" if r.null_distance is not None else ""
    recovery = f", recovery {r.recovery:.2f}" if r.recovery is not None else ""
    small = ", small face" if r.small else ""
    return (
        f'<div class="case" data-leak="{str(r.leak).lower()}"><div class="pair">'
        f"{_img(case.original_jpeg, 'original face')}{_img(case.anonymized_jpeg, 'anonymized face')}</div>"
        f"<div>{where}, {who}{small}<br>distance {r.distance:.3f}{null}{recovery}{rank} &middot; {status}</div></div>"
    )


def leak_section(result: EvaluationResult) -> str:
    leaks = result.leaks
    if not leaks:
        text = "No anonymized face is re-identified." if result.faces else "No faces were analysed."
        return f'<section id="leaks"><h2>Leak audit</h2><p class="good">{text}</p></section>'
    kind = result.frames.get("kind")
    cases = "".join(_case_html(c, kind) for c in result.leak_cases)
    shown = (
        (
            f'<p class="note">Closest match of each leaking identity ({len(result.leak_cases)} shown; the JSON lists '
            f"all {len(leaks)}).</p>"
        )
        if result.leak_cases
        else ""
    )
    rows = []
    for f in leaks[:MAX_LEAK_ROWS]:
        where = html.escape(f.key) if f.key and kind != "video" else str(f.frame)
        time = f"{f.time:.3f}" if f.time is not None else "&ndash;"
        ident = f"track {f.identity}" if kind == "video" and f.identity >= 0 else "&ndash;"
        box = ", ".join(f"{v:.0f}" for v in f.box)
        rows.append(
            f"<tr><td>{where}</td><td class=num>{time}</td><td>{ident}</td><td class=num>{f.distance:.3f}</td>"
            f"<td class=num>{_fmt(f.null_distance)}</td><td class=num>{_fmt(f.recovery, 2)}</td>"
            f"<td class=num>{f.size:.0f}</td><td class=num>{box}</td></tr>"
        )
    more = (
        f'<p class="note">{len(leaks) - MAX_LEAK_ROWS} more leaks in the JSON.</p>'
        if len(leaks) > MAX_LEAK_ROWS
        else ""
    )
    table = (
        "<table id='leak-table'><tr><th>Frame / file</th><th>Time (s)</th><th>Track</th><th>Distance</th>"
        "<th>Null distance</th><th>Recovery</th><th>Height (px)</th><th>Box (x1, y1, x2, y2)</th></tr>"
        + "".join(rows)
        + "</table>"
        + more
    )
    return (
        f'<section id="leaks"><h2>Leak audit</h2><p class="bad">{len(leaks)} anonymized faces are re-identified.'
        f'</p>{shown}<div class="cases" id="leak-cases">{cases}</div>{table}</section>'
    )


def worst_section(result: EvaluationResult) -> str:
    if not result.worst_cases:
        return ""
    kind = result.frames.get("kind")
    cases = "".join(_case_html(c, kind) for c in result.worst_cases)
    return (
        f'<section id="worst"><h2>Worst cases</h2><p class="note">The anonymized faces closest to their original, '
        f'original left, anonymized right.</p><div class="cases" id="worst-cases">{cases}</div></section>'
    )


def temporal_section(result: EvaluationResult, s: dict) -> str:
    parts = []
    if result.warping:
        frames = [w.frame for w in result.warping]
        series = [
            ("original", frames, [w.original for w in result.warping], ORIGINAL_COLOR),
            ("anonymized", frames, [w.anonymized for w in result.warping], ANONYMIZED_COLOR),
        ]
        face_frames = [w.frame for w in result.warping if w.anonymized_faces is not None]
        if face_frames:
            series += [
                (
                    "original, faces",
                    face_frames,
                    [w.original_faces for w in result.warping if w.original_faces is not None],
                    "#6baed6",
                ),
                (
                    "anonymized, faces",
                    face_frames,
                    [w.anonymized_faces for w in result.warping if w.anonymized_faces is not None],
                    "#fc9272",
                ),
            ]
        svg = svg_lines(
            series, x_label="frame", y_label="warping error", title="Flow-warping error per frame", y_min=0.0
        )
        parts.append(
            f'<figure class="plot" id="fig-warping">{svg}<figcaption>E_warp of frame t against t&minus;1 '
            f"warped with the original's optical flow (occlusions masked). The anonymized curve above the "
            f"original one is flicker the anonymizer adds.</figcaption></figure>"
        )
    steps_a = [f.step_anonymized for f in result.faces if f.step_anonymized is not None]
    steps_o = [f.step_original for f in result.faces if f.step_original is not None]
    if steps_a:
        top = max(1.2, result.threshold * 2, max(steps_a + steps_o) * 1.05)
        svg = svg_histogram(
            [("original track", steps_o, ORIGINAL_COLOR), ("anonymized track", steps_a, ANONYMIZED_COLOR)],
            x_range=(0.0, top),
            bins=30,
            threshold=result.threshold,
            x_label="distance between consecutive faces",
            title="Identity stability along tracks",
        )
        parts.append(
            f'<figure class="plot" id="fig-stability">{svg}<figcaption>Distance between consecutive analysed '
            f"faces of the same track. Left of the dashed line the recognizer sees one person: an anonymizer "
            f"that keeps one fake identity per track stays there.</figcaption></figure>"
        )
    if not parts:
        return ""
    return f'<section id="temporal"><h2>Temporal consistency</h2>{"".join(parts)}</section>'


def fidelity_section(result: EvaluationResult, s: dict) -> str:
    f = s["fidelity_outside_faces"]
    a = s["attributes"]
    measures = [
        ("PSNR outside faces", f"{_fmt(f.get('psnr_db'), 2)} dB (min {_fmt(f.get('psnr_db_min'), 2)})"),
        ("SSIM outside faces", f"{_fmt(f.get('ssim'), 4)} (min {_fmt(f.get('ssim_min'), 4)})"),
        ("Faces still detected", _fmt(s["detected_rate"], percent=True)),
        ("Faces only in the anonymized output", s["extra_faces_in_anonymized"]),
    ]
    rows = "".join(f"<tr><th>{name}</th><td class=num>{value}</td></tr>" for name, value in measures)
    attr = ""
    if a.get("available") and a.get("per_attribute"):
        cells = "".join(
            f"<tr><td>{html.escape(k)}</td><td class=num>{_fmt(v, percent=True)}</td></tr>"
            for k, v in sorted(a["per_attribute"].items())
        )
        attr = f"<h3>Attribute agreement ({html.escape(a.get('model', ''))})</h3><table>{cells}</table>"
    elif not a.get("available"):
        attr = f'<p class="note">Attribute agreement not measured: {html.escape(a.get("reason", ""))}.</p>'
    return (
        f'<section id="fidelity"><h2>Fidelity outside faces</h2><table>{rows}</table>'
        f'<p class="note">Measured over {f.get("frames", 0)} frames, outside the original face boxes grown '
        f"{f.get('mask_scale')}x; SSIM on luma at the analysis size.</p>{attr}</section>"
    )


def details_section(result: EvaluationResult) -> str:
    fr = result.frames
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in fr.items()
        if k != "unpaired_keys"
    )
    unpaired = ""
    if fr.get("unpaired_keys"):
        unpaired = "<p class=note>Unpaired: " + ", ".join(html.escape(k) for k in fr["unpaired_keys"][:50]) + "</p>"
    config = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in result.config.items()
    )
    return (
        f'<section id="details"><h2>Details</h2><h3>Frames</h3><table>{rows}</table>{unpaired}'
        f"<h3>Settings</h3><table>{config}</table>"
        f'<p class="note">The anonymized face is embedded with the original face\'s alignment, granting the attacker '
        f"perfect alignment: the re-identification rate is an upper bound for this recognizer.</p></section>"
    )
