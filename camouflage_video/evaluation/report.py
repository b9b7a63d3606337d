"""The evaluation report: one self-contained HTML file (inline CSS, SVG plots, base64 thumbnails) and the JSON.

No script, no external font, no network: the file opens the same offline, in a mail attachment or in an
archive years later. Plots are drawn as inline SVG here rather than with a plotting library, which keeps
the ``evaluation`` extra small and the figures crisp at any zoom.
"""

from __future__ import annotations

import datetime as _dt
import html
import json
import os
from pathlib import Path

from camouflage_video.errors import OutputError
from camouflage_video.evaluation.records import EvaluationResult
from camouflage_video.evaluation.report_sections import (
    attack_section,
    details_section,
    fidelity_section,
    leak_section,
    reid_section,
    run_section,
    summary_section,
    temporal_section,
    tracks_section,
    worst_section,
)
from camouflage_video.sinks.base import publish, temporary_path

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;margin:0;background:#f6f7f9}
main{max-width:1040px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px} h2{font-size:19px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
section{background:#fff;border:1px solid #e3e5e8;border-radius:6px;padding:12px 18px;margin:16px 0}
.meta{color:#555;font-size:13px;word-break:break-all}
.verdict{display:inline-block;font-weight:700;font-size:18px;padding:8px 14px;border-radius:6px;margin:10px 0}
.verdict-leak{background:#fde2e1;color:#a11}.verdict-pass{background:#e1f5e4;color:#175c2a}
.verdict-no-faces{background:#eee;color:#444}
table{border-collapse:collapse;width:100%;margin:6px 0}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid #eee;vertical-align:top}
th{background:#fafafa;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bad{color:#b00;font-weight:600}.good{color:#176b2c;font-weight:600}.note{color:#666;font-size:12.5px}
figure{margin:10px 0}figcaption{color:#555;font-size:12.5px;margin-top:2px}
svg.plot{width:100%;height:auto;background:#fff}
.cases{display:flex;flex-wrap:wrap;gap:12px}
.case{border:1px solid #e3e5e8;border-radius:6px;padding:6px;background:#fcfcfd;font-size:12px}
.case img{height:112px;display:inline-block;margin-right:3px;border-radius:3px}
.pair{white-space:nowrap}.thumb-missing{display:inline-block;width:112px;height:112px;background:#eee}
"""


def write_json(result: EvaluationResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result.to_dict()`` as JSON; the file appears atomically under its final name."""
    text = json.dumps(result.to_dict(), indent=2, allow_nan=False)
    return _write_text(Path(path), text)


def write_report(result: EvaluationResult, path: str | os.PathLike[str]) -> Path:
    """Write the HTML report; the file appears atomically under its final name."""
    return _write_text(Path(path), render_report(result))


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail now, before a long evaluation, if ``path`` cannot be written."""
    final = Path(path)
    if final.is_dir():
        raise OutputError(f"{final}: is a folder; give a file name")
    temporary_path(final).unlink()


def _write_text(final: Path, text: str) -> Path:
    if final.is_dir():
        raise OutputError(f"{final}: is a folder; give a file name")
    temporary = temporary_path(final)
    try:
        temporary.write_text(text, encoding="utf-8")
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise OutputError(f"{final}: cannot write ({exc.strerror or exc})") from exc
    publish(temporary, final)
    return final


# -- HTML ---------------------------------------------------------------------------------------------


def render_report(result: EvaluationResult) -> str:
    """The report as one HTML string."""
    summary = result.summary()
    esc = html.escape
    original, anonymized = result.original.get("uri", "?"), result.anonymized.get("uri", "?")
    verdict = summary["verdict"]
    displaced = summary["displaced_leak_frames"]
    verdict_text = {
        "leak": f"LEAK: {summary['leaks']} of {summary['faces']} anonymized faces are re-identified"
        + (f"; in {len(displaced)} frame(s) a face away from every original face is an original's person"
           if displaced else ""),
        "pass": f"PASS: none of {summary['faces']} anonymized faces is re-identified",
        "no-faces": "NO FACES: no face was found in the original, nothing to judge"
        + (f" (the anonymized side shows faces in {summary['frames_with_extra_faces']} of the pictures)"
           if summary["frames_with_extra_faces"] else ""),
    }[verdict]
    interrupted = (
        '<p class="bad">Interrupted: these results cover only the part of the input analysed before Ctrl-C.</p>'
        if result.interrupted
        else ""
    )
    name, metric = esc(result.recognizer["name"]), esc(result.recognizer["metric"])
    recognizer = f"{name} (match below {result.threshold:g} {metric} distance)"
    generated = esc(_dt.datetime.now().strftime("%Y-%m-%d %H:%M"))
    meta = (
        f"Original: <code>{esc(original)}</code><br>Anonymized: <code>{esc(anonymized)}</code><br>"
        f"Recognizer: {recognizer} &middot; generated {generated}"
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Privacy evaluation: {esc(Path(anonymized).name)}</title>",
        f"<style>{_CSS}</style></head><body><main>",
        "<header><h1>Privacy evaluation</h1>",
        f'<p class="meta">{meta}</p>',
        f'<div class="verdict verdict-{verdict}" id="verdict">{esc(verdict_text)}</div>{interrupted}</header>',
        summary_section(result, summary),
        reid_section(result, summary),
        attack_section(result),
        run_section(result),
        tracks_section(result),
        leak_section(result),
        worst_section(result),
        temporal_section(result, summary),
        fidelity_section(result, summary),
        details_section(result),
        "</main></body></html>",
    ]
    return "\n".join(parts)
