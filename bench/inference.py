"""Seconds per image of an exported generator (the SavedModel's `translate` signature).

  python bench/inference.py --size 256 --batch_size 1 --precision fp32|bf16|fp16 [--netG resnet_9blocks]
  python bench/inference.py --size 256 --official /path/to/torch-env/bin/python --rounds 3

Builds a CycleGAN run folder (its checkpoint as train.py writes it) with freshly initialised weights
(timing does not depend on training), exports G with export_graph's code at the given precision, loads it
with plain tf.saved_model.load and times `translate` on a fixed batch after two warm-up calls. Prints one JSON line.
With `--official PYTHON` (an environment with PyTorch), each of `--rounds` rounds also runs
bench/official_reference.py --inference with the same size, batch and netG right after ours, and the line
adds both medians of the round medians and ours / official: side by side on the same machine, in one command.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from timing import summary, time_calls  # noqa: E402 - bench/timing.py

from cyclegan_tf import models  # noqa: E402
from cyclegan_tf.config import TrainConfig  # noqa: E402
from cyclegan_tf.deploy.savedmodel import export  # noqa: E402
from cyclegan_tf.options import PRECISIONS  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--netG", default="")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--official", default="", help="python of an environment with PyTorch: time the official too")
    p.add_argument("--rounds", type=int, default=1, help="ours then the official, this many times (--official)")
    args = p.parse_args()
    cfg = TrainConfig(model=models.DEFAULT, image_size=args.size, netG=args.netG).resolved()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        model = models.get(cfg.model)(cfg, 1000, 1)
        tf.train.CheckpointManager(model.checkpoint(), str(run), max_to_keep=1).save()
        cfg.save(run / "flags.json")
        m = tf.saved_model.load(str(export(run, "XtoY", Path(tmp) / "g", precision=args.precision)))
        x = tf.random.uniform([args.batch_size, args.size, args.size, 3], 0, 255)
        ours, official, times = [], [], []
        for _ in range(args.rounds if args.official else 1):
            times = time_calls(lambda: m.translate(x)["images"].numpy(), args.runs)
            ours.append(statistics.median(times))
            if args.official:
                official.append(_official(args, cfg.netG))
    side_by_side = {} if not official else {
        "rounds": args.rounds, "ours_sec_per_batch": round(statistics.median(ours), 4),
        "official_sec_per_batch": round(statistics.median(official), 4),
        "ours_over_official": round(statistics.median(ours) / statistics.median(official), 3)}
    print(json.dumps({**side_by_side,
        "bench": "inference", "size": args.size, "batch_size": args.batch_size, "netG": cfg.netG,
        "precision": args.precision, "runs": args.runs, **summary(times, "batch", args.batch_size),
        "sec_per_image": round(statistics.median(times) / args.batch_size, 4),
        "devices": [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"],
        "cpus": os.cpu_count(), "machine": platform.machine(), "tensorflow": tf.__version__}))


def _official(args: argparse.Namespace, netG: str) -> float:
    """The official generator's median seconds per batch, from bench/official_reference.py in `--official`."""
    command = [args.official, str(Path(__file__).with_name("official_reference.py")), "--inference",
               "--size", str(args.size), "--batch_size", str(args.batch_size), "--netG", netG,
               "--steps", str(args.runs)]
    r = subprocess.run(command, capture_output=True, text=True, check=False)
    if r.returncode:
        sys.exit(f"bench/official_reference.py failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return json.loads(r.stdout.strip().splitlines()[-1])["sec_per_step_median"]


if __name__ == "__main__":
    main()
