"""``camouflage-video review VIDEO --tracks tracks.json -o review.html``: one self-contained page to review a run.

The page holds the *anonymized* frames only: they are rendered here from the tracks file, with its decisions,
exactly as ``--tracks-in`` re-renders them (a frame that fails is the whole-frame fallback), so whatever VIDEO
is (the original or the anonymized output), no original face pixels reach the page; the faces left visible
are those the tracks file keeps. It loads nothing from anywhere (inline script and style, images as data URIs,
a Content-Security-Policy that forbids any other source).

On a timeline of the frames, the reviewer sees every box and track (kept green, removed red, held and
back-filled dashed), draws boxes over frame ranges with the mouse (drag on an empty spot), moves them (drag
inside), resizes them (drag the bottom-right corner), deletes them, sets each one's first and last frame, marks
tracks kept or removed, and exports ``regions.json`` for ``--tracks-in tracks.json --regions regions.json``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from camouflage_video.errors import ConfigError
from camouflage_video.frame import FrameContext
from camouflage_video.pipelines.classic import fallback_image
from camouflage_video.redaction.files import load_regions, load_tracks

#: Frames embedded at most (evenly spaced; the timeline still covers every frame) and their long side.
MAX_FRAMES = 400
MAX_SIDE = 640


def render_review(video: str | os.PathLike[str], tracks: str | os.PathLike[str], output: str | os.PathLike[str],
                  *, config: Any = None, regions: str | os.PathLike[str] | None = None,
                  max_frames: int = MAX_FRAMES, max_side: int = MAX_SIDE, quality: int = 80) -> Path:
    """Write the review page for ``video`` and its ``tracks`` file (optionally with earlier ``regions``).

    Args:
        video: The video the tracks file was made from (its frames are re-rendered from the file).
        tracks: The run's ``tracks.json``.
        output: The HTML file to write (atomically: temporary name, then renamed).
        config: The ``AnonymizeConfig`` the frames are rendered with (its method and mask); by default the
            tracks file's classic method (blur for a generative run).
        regions: A ``regions.json`` to start from (its regions and track marks are shown and exported again).
        max_frames: Frames embedded at most.
        max_side: Long side of the embedded frames.

    Raises:
        ConfigError: A bad tracks or regions file, or one made from another video.
    """
    from camouflage_video.config import AnonymizeConfig, StageCache
    from camouflage_video.sources import open_source

    out = Path(output)
    if not out.parent.is_dir():
        raise ConfigError(f"{out}: folder does not exist")
    if Path(video).resolve() == out.resolve() or Path(tracks).resolve() == out.resolve():
        raise ConfigError(f"{out}: the review page would overwrite one of its inputs")
    data = load_tracks(tracks)
    earlier = load_regions(regions) if regions else None
    if config is None:  # the run's classic look (a generative run's frames are shown blurred), mask and shape
        method = data.data.get("method")
        look = {key: data.data[key] for key in ("mask_scale", "shape") if key in data.data}
        config = AnonymizeConfig(method=method if method in ("blur", "pixelate", "solid") else "blur", **look)
    base = config
    config = base.with_options(tracks_in=str(tracks), tracks_out=None, regions=str(regions) if regions else None,
                               keep_person=(), only_person=())
    frames: dict[int, str] = {}
    with open_source(str(video)) as source:
        info = source.info
        if earlier is not None:
            earlier.check(width=info.width, height=info.height, frame_count=data.frame_count,
                          track_ids=data.track_ids)
        annotators, anonymizer = StageCache(config)(info)  # checks the tracks file against the video
        step = max(1, math.ceil(data.frame_count / max(1, max_frames)))
        scale = min(1.0, max_side / max(info.width, info.height))
        for frame in source:
            if frame.index % step:
                continue  # only the embedded frames are rendered (each verified track is checked when first seen)
            ctx = FrameContext(frame)
            try:
                for annotator in annotators:
                    annotator.annotate(ctx)
                image = anonymizer(ctx)
            except Exception:  # noqa: BLE001 - fail closed: the page shows the fallback for that frame
                image = fallback_image(frame.image)
            frames[frame.index] = _jpeg(image, scale, quality)
        anonymizer.finish(completed=False)
    page = _page(data, frames, scale, earlier, Path(video).name)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.partial")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, out)
    return out


def _jpeg(image: np.ndarray, scale: float, quality: int) -> str:
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ConfigError("cannot encode a review frame as JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(encoded.tobytes()).decode("ascii")


def _page(tracks: Any, frames: dict[int, str], scale: float, earlier: Any, title: str) -> str:
    boxes: dict[int, list] = {}
    for index, faces in tracks.frames.items():
        if faces is None:
            boxes[index] = None  # type: ignore[assignment]
            continue
        boxes[index] = [{"box": list(f.box), "track": f.track, "state": f.state, "decision": f.decision}
                        for f in faces]
    start = {"regions": [], "tracks": []}
    if earlier is not None:
        start["regions"] = [{"id": r.id, "frames": [r.first, r.last], "cover": r.cover,
                             **_area_of(r)} for r in earlier.regions]
        start["tracks"] = [{"track": o.track, "action": o.action,
                            **({"frames": [o.first, o.last]} if o.last is not None or o.first else {})}
                           for o in earlier.tracks]
    payload = {"width": tracks.width, "height": tracks.height, "frame_count": tracks.frame_count, "scale": scale,
               "frames": {str(k): v for k, v in sorted(frames.items())},
               "boxes": {str(k): v for k, v in sorted(boxes.items())}, "start": start}
    # JSON inside <script>: "</" must not end the element early.
    script_data = json.dumps(payload).replace("</", "<\\/")
    return _TEMPLATE.replace("__TITLE__", html.escape(title)).replace("__DATA__", script_data)


def _area_of(region: Any) -> dict:
    return {"box": list(region.box)} if region.box is not None else {"polygon": [list(p) for p in region.polygon]}


_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
      content="default-src 'none'; img-src data: blob:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>Review: __TITLE__</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 12px; background: #f4f4f4; color: #111; }
#stage { display: flex; gap: 16px; align-items: flex-start; }
canvas { background: #000; cursor: crosshair; display: block; }
#side { min-width: 300px; }
#side h2 { font-size: 15px; margin: 10px 0 4px; }
table { border-collapse: collapse; }
td, th { padding: 2px 6px; border-bottom: 1px solid #ddd; text-align: left; }
button.on { background: #333; color: #fff; }
#timeline { width: 100%; }
textarea { width: 100%; height: 140px; font: 12px monospace; }
.note { color: #555; font-size: 12px; }
</style></head>
<body>
<h1 style="font-size:18px">Review: __TITLE__</h1>
<p class="note">Anonymized frames only. Green: kept (visible), red: removed (anonymized), dashed: held or
back-filled boxes, yellow: your regions (always anonymized). Drag on an empty spot to add a box from this
frame on; drag inside a box to move it, its bottom-right corner to resize it.</p>
<div id="stage">
 <div>
  <canvas id="view"></canvas>
  <div><input id="timeline" type="range" min="0" value="0" step="1"></div>
  <div><button id="prev">&larr;</button> frame <span id="frame-number">0</span> / <span id="frame-last"></span>
   <button id="next">&rarr;</button> <span id="shown" class="note"></span></div>
 </div>
 <div id="side">
  <h2>Regions</h2>
  <table id="regions"><thead><tr><th>id</th><th>first</th><th>last</th><th></th></tr></thead><tbody></tbody></table>
  <div>selected: <span id="selected">none</span>
   first <input id="region-first" type="number" min="0" style="width:5em">
   last <input id="region-last" type="number" min="0" style="width:5em">
   <button id="delete-region">delete</button></div>
  <h2>Tracks</h2>
  <table id="tracks"><thead><tr><th>track</th><th>frames</th><th>mark</th></tr></thead><tbody></tbody></table>
  <h2>Export</h2>
  <button id="export">export regions.json</button>
  <textarea id="regions-json" readonly></textarea>
 </div>
</div>
<script>
"use strict";
const DATA = __DATA__;
const S = DATA.scale, N = DATA.frame_count;
const canvas = document.getElementById("view"), g = canvas.getContext("2d");
canvas.width = Math.round(DATA.width * S); canvas.height = Math.round(DATA.height * S);
const timeline = document.getElementById("timeline");
timeline.max = N - 1;
document.getElementById("frame-last").textContent = N - 1;
const shown = Object.keys(DATA.frames).map(Number).sort((a, b) => a - b);
const images = {};
let current = 0, regions = DATA.start.regions.map(r => Object.assign({}, r)), marks = {}, selected = null;
let counter = regions.length, drag = null;
for (const t of DATA.start.tracks) marks[t.track] = t;

function imageFor(frame) {  // the embedded frame at or before this one
  let best = shown[0];
  for (const f of shown) { if (f <= frame) best = f; else break; }
  if (!(best in images)) { const im = new Image(); im.onload = draw; im.src = DATA.frames[best]; images[best] = im; }
  return [best, images[best]];
}
function active(r) { return r.frames[0] <= current && current <= r.frames[1]; }
function draw() {
  const [f, im] = imageFor(current);
  g.clearRect(0, 0, canvas.width, canvas.height);
  if (im.complete) g.drawImage(im, 0, 0, canvas.width, canvas.height);
  document.getElementById("shown").textContent = f === current ? "" : "(showing frame " + f + ")";
  const faces = DATA.boxes[current];
  if (faces === null) { g.fillStyle = "#fff"; g.fillText("fallback frame", 10, 20); }
  for (const face of faces || []) {
    const [x1, y1, x2, y2] = face.box.map(v => v * S);
    const mark = marks[face.track], decision = mark && inRange(mark) ? mark.action : face.decision;
    g.strokeStyle = decision === "kept" ? "#0c0" : "#e00"; g.lineWidth = 2;
    g.setLineDash(face.state === "detected" ? [] : [5, 4]);
    g.strokeRect(x1, y1, x2 - x1, y2 - y1); g.setLineDash([]);
    g.fillStyle = g.strokeStyle; g.fillText((face.track >= 0 ? "#" + face.track : "?") + " " + face.state, x1, y1 - 3);
  }
  for (const r of regions) {
    if (!active(r) || !r.box) { if (active(r) && r.polygon) drawPolygon(r); continue; }
    const [x1, y1, x2, y2] = r.box.map(v => v * S);
    g.strokeStyle = "#fd0"; g.lineWidth = r === selected ? 3 : 2; g.strokeRect(x1, y1, x2 - x1, y2 - y1);
    g.fillStyle = "rgba(255, 220, 0, 0.25)"; g.fillRect(x1, y1, x2 - x1, y2 - y1);
    g.fillStyle = "#fd0"; g.fillRect(x2 - 6, y2 - 6, 6, 6);
  }
  document.getElementById("frame-number").textContent = current;
  timeline.value = current;
}
function drawPolygon(r) {
  g.beginPath(); r.polygon.forEach(([x, y], i) => i ? g.lineTo(x * S, y * S) : g.moveTo(x * S, y * S));
  g.closePath(); g.strokeStyle = "#fd0"; g.stroke();
}
function inRange(mark) { return !mark.frames || (mark.frames[0] <= current && current <= mark.frames[1]); }
function point(ev) {
  const rect = canvas.getBoundingClientRect();
  return [(ev.clientX - rect.left) / S, (ev.clientY - rect.top) / S];
}
function hit(x, y) {
  for (let i = regions.length - 1; i >= 0; i--) {
    const r = regions[i];
    if (!r.box || !active(r)) continue;
    const [x1, y1, x2, y2] = r.box, corner = 8 / S;
    if (Math.abs(x - x2) <= corner && Math.abs(y - y2) <= corner) return [r, "resize"];
    if (x1 <= x && x <= x2 && y1 <= y && y <= y2) return [r, "move"];
  }
  return [null, null];
}
function clampBox(b) {
  let [x1, y1, x2, y2] = b;
  [x1, x2] = [Math.min(x1, x2), Math.max(x1, x2)]; [y1, y2] = [Math.min(y1, y2), Math.max(y1, y2)];
  const c = (v, hi) => Math.round(Math.max(0, Math.min(hi, v)));
  return [c(x1, DATA.width), c(y1, DATA.height), c(x2, DATA.width), c(y2, DATA.height)];
}
canvas.addEventListener("mousedown", ev => {
  const [x, y] = point(ev), [r, mode] = hit(x, y);
  if (r) { select(r); drag = {mode, r, x, y, box: r.box.slice()}; }
  else {
    const nr = {id: "region-" + (++counter), frames: [current, N - 1], box: [x, y, x, y]};
    regions.push(nr); select(nr); drag = {mode: "new", r: nr, x, y, box: nr.box.slice()};
  }
  ev.preventDefault();
});
window.addEventListener("mousemove", ev => {
  if (!drag) return;
  const [x, y] = point(ev), dx = x - drag.x, dy = y - drag.y, b = drag.box;
  if (drag.mode === "move") drag.r.box = [b[0] + dx, b[1] + dy, b[2] + dx, b[3] + dy];
  else if (drag.mode === "resize") drag.r.box = [b[0], b[1], b[2] + dx, b[3] + dy];
  else drag.r.box = [drag.x, drag.y, x, y];
  draw();
});
window.addEventListener("mouseup", () => {
  if (!drag) return;
  const r = drag.r; r.box = clampBox(r.box); drag = null;
  if (r.box[2] - r.box[0] < 2 || r.box[3] - r.box[1] < 2) { regions = regions.filter(o => o !== r); select(null); }
  refresh();
});
function select(r) {
  selected = r;
  document.getElementById("selected").textContent = r ? r.id : "none";
  document.getElementById("region-first").value = r ? r.frames[0] : "";
  document.getElementById("region-last").value = r ? r.frames[1] : "";
}
function setRange() {
  const given = ["region-first", "region-last"].map(id => document.getElementById(id).value);
  if (!selected || given.some(v => v === "")) return;  // still being typed
  const first = Math.max(0, Math.min(N - 1, parseInt(document.getElementById("region-first").value || "0", 10)));
  const last = Math.max(first, Math.min(N - 1, parseInt(document.getElementById("region-last").value || "0", 10)));
  selected.frames = [first, last]; select(selected); refresh();
}
document.getElementById("region-first").addEventListener("change", setRange);
document.getElementById("region-last").addEventListener("change", setRange);
function deleteSelected() { if (selected) { regions = regions.filter(o => o !== selected); select(null); refresh(); } }
document.getElementById("delete-region").addEventListener("click", deleteSelected);
window.addEventListener("keydown", ev => {
  if (ev.target.tagName === "INPUT") return;
  if (ev.key === "Delete") deleteSelected();
  if (ev.key === "ArrowRight") go(current + 1);
  if (ev.key === "ArrowLeft") go(current - 1);
});
function go(f) { current = Math.max(0, Math.min(N - 1, f)); draw(); }
timeline.addEventListener("input", () => go(parseInt(timeline.value, 10)));
document.getElementById("prev").addEventListener("click", () => go(current - 1));
document.getElementById("next").addEventListener("click", () => go(current + 1));
function refresh() {
  const body = document.querySelector("#regions tbody"); body.innerHTML = "";
  for (const r of regions) {
    const tr = document.createElement("tr"); tr.dataset.region = r.id;
    for (const v of [r.id, r.frames[0], r.frames[1]]) {
      const td = document.createElement("td"); td.textContent = v; tr.appendChild(td);
    }
    const td = document.createElement("td"), b = document.createElement("button");
    b.textContent = "go"; b.addEventListener("click", () => { select(r); go(r.frames[0]); });
    td.appendChild(b); tr.appendChild(td);
    body.appendChild(tr);
  }
  draw();
}
function trackTable() {
  const spans = {};
  for (const [f, faces] of Object.entries(DATA.boxes)) for (const face of faces || []) {
    if (face.track < 0) continue;
    const s = spans[face.track] || (spans[face.track] = {first: +f, last: +f, kept: 0});
    s.first = Math.min(s.first, +f); s.last = Math.max(s.last, +f); if (face.decision === "kept") s.kept++;
  }
  const body = document.querySelector("#tracks tbody");
  for (const id of Object.keys(spans).map(Number).sort((a, b) => a - b)) {
    const s = spans[id], tr = document.createElement("tr"); tr.dataset.track = id;
    tr.innerHTML = "<td>#" + id + "</td><td>" + s.first + "-" + s.last
      + (s.kept ? " (kept in " + s.kept + ")" : "") + "</td>";
    const td = document.createElement("td");
    for (const action of ["kept", "removed", "as run"]) {
      const b = document.createElement("button"); b.textContent = action; b.dataset.action = action;
      b.addEventListener("click", () => {
        if (action === "as run") delete marks[id]; else marks[id] = {track: id, action};
        for (const o of td.querySelectorAll("button")) o.classList.toggle("on", o === b && action !== "as run");
        draw();
      });
      if (marks[id] && marks[id].action === action) b.classList.add("on");
      td.appendChild(b);
    }
    tr.appendChild(td); body.appendChild(tr);
  }
}
document.getElementById("export").addEventListener("click", () => {
  const out = {version: 1,
    regions: regions.map(r => Object.assign({id: r.id, frames: r.frames}, r.box ? {box: r.box} : {polygon: r.polygon},
                                            r.cover ? {cover: r.cover} : {})),
    tracks: Object.values(marks)};
  const text = JSON.stringify(out, null, 1);
  document.getElementById("regions-json").value = text;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([text], {type: "application/json"}));
  a.download = "regions.json"; document.body.appendChild(a); a.click(); a.remove();
});
trackTable(); refresh(); go(0);
</script></body></html>
"""
