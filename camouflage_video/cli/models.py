"""``camouflage-video models list|fetch|check``: the models of a generative method."""

from __future__ import annotations

import argparse
import sys

from camouflage_video.cli.run_options import add_model_sources, generative_from_args


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = commands.add_parser(
        "models", help="list, download or check the models of a generative method",
        description="list: components and where each loads from; fetch: download them (to the HF cache, or "
        "into --models-dir); check: verify that the configuration loads offline (honours HF_HUB_OFFLINE).",
    )
    p.add_argument("action", choices=("list", "fetch", "check"))
    p.add_argument("preset", nargs="?", default="base", help="method whose models to handle (default: base)")
    add_model_sources(p)
    p.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from camouflage_video import methods, models

    names, specs, models_dir = methods.selected_components(args.preset, generative_from_args(args))
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
