"""Helpers shared by the benchmark scripts: machine description, timing, peak memory, results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MEDIA = Path(os.environ.get("CAMOUFLAGE_MEDIA", REPO.parent / "shared" / "media"))
WORK = HERE / "work"  # generated inputs and outputs (git-ignored)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    system = f"{platform.system()} {platform.release()}, Python {platform.python_version()}"
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {system}"


def timed(cmd: list[str], **kwargs) -> tuple[float, int]:
    """Run a command in its own process; returns (wall seconds, peak RSS in MiB of that process tree)."""
    probe = (
        "import resource, subprocess, sys, time, json;"
        "t = time.perf_counter();"
        "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE);"
        "w = time.perf_counter() - t;"
        "rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss;"
        "print(json.dumps([w, rss, r.returncode, r.stderr.decode()[-2000:]]))"
    )
    out = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True, check=True, **kwargs)
    wall, rss_kib, code, err = json.loads(out.stdout)
    if code != 0:
        raise RuntimeError(f"{cmd[0]} failed ({code}): {err}")
    return wall, rss_kib // 1024


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def write_results(section: str, body: str) -> None:
    """Replace (or add) one ``## section`` in benchmarks/RESULTS.md."""
    path = HERE / "RESULTS.md"
    header = "# Benchmark results\n\nEach section is rewritten by the script named in it.\n"
    text = path.read_text() if path.exists() else header
    stamp = time.strftime("%Y-%m-%d")
    block = f"## {section}\n\n{body.strip()}\n\nMachine: {machine()}. Recorded {stamp}.\n"
    parts = text.split("\n## ")
    head, sections = parts[0], {p.split("\n", 1)[0]: "## " + p for p in parts[1:]}
    sections[section] = block
    path.write_text(head.rstrip() + "\n\n" + "\n".join(s.rstrip() + "\n" for s in sections.values()))
