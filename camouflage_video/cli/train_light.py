"""``camouflage-video train-light``: train CAMOUFLaGE-Light's attribute T2I-Adapter on a folder of faces."""

from __future__ import annotations

import argparse
import logging
import sys

from camouflage_video.cli.flags import add_flags, given
from camouflage_video.cli.run_options import add_messages
from camouflage_video.options import GENERATIVE

EXAMPLES = """examples:
  camouflage-video train-light CelebA-HQ-img/ --output ckpt/ --max-steps 20000 --mixed-precision fp16
  camouflage-video train-light CelebA-HQ-img/ --output ckpt/ --resume          # continue the latest checkpoint
  accelerate launch --num_processes 4 -m camouflage_video train-light CelebA-HQ-img/ --output ckpt/
  camouflage-video anonymize clip.mp4 --method light --t2i-adapter ckpt/         # use the trained adapter
"""


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from camouflage_video.training import light

    p = commands.add_parser(
        "train-light", help="train CAMOUFLaGE-Light's attribute T2I-Adapter on a folder of face images",
        description=light.__doc__.split("\n\n")[1], epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("data_dir", metavar="DATA_DIR",
                   help="folder of face images (CelebA-HQ, FFHQ...; searched recursively)")
    p.add_argument("--output", required=True, metavar="DIR", help="checkpoints, log, cache and the final adapter")
    groups = {title: p.add_argument_group(title) for title in (light.TRAINING, light.CONDITIONING, "models")}
    flags = add_flags(p, light.TrainLightOptions, groups=groups, rename={GENERATIVE: light.CONDITIONING})
    groups["models"].add_argument("--config", metavar="TOML", help="TOML file with model sources and training options")
    add_messages(p)
    p.set_defaults(func=run, train_flags=flags)
    return p


def run(args: argparse.Namespace) -> int:
    from camouflage_video.training.light import TrainLightOptions, train_light

    options = {"data_dir": args.data_dir, "output": args.output, **given(args, args.train_flags)}
    if args.config:
        options["config"] = args.config
    if not args.quiet:
        logging.getLogger("camouflage_video").setLevel(logging.INFO)
    result = train_light(TrainLightOptions.from_mapping(options), progress=False if args.quiet else None)
    if not args.quiet:
        print(f"{result.output}: {result.step} steps, loss {result.loss:.4f}; use --t2i-adapter {result.output}",
              file=sys.stderr)
    return 0
