"""Seconds per image of an exported generator (the SavedModel's `translate` signature).

  python bench/inference.py --size 256 --batch_size 1 --precision fp32|bf16|fp16 [--netG resnet_9blocks]

Builds a CycleGAN run folder (its checkpoint as train.py writes it) with freshly initialised weights
(timing does not depend on training), exports G with export_graph's code at the given precision, loads it
with plain tf.saved_model.load and times `translate` on a fixed batch after two warm-up calls. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from timing import summary, time_calls  # noqa: E402 - bench/timing.py

from cyclegan_tf import models  # noqa: E402
from cyclegan_tf.config import TrainConfig  # noqa: E402
from cyclegan_tf.export import export  # noqa: E402
from cyclegan_tf.options import PRECISIONS  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--netG", default="")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    args = p.parse_args()
    cfg = TrainConfig(model=models.DEFAULT, image_size=args.size, netG=args.netG).resolved()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        model = models.get(cfg.model)(cfg, 1000, 1)
        tf.train.CheckpointManager(model.checkpoint(), str(run), max_to_keep=1).save()
        cfg.save(run / "flags.json")
        m = tf.saved_model.load(str(export(run, "XtoY", Path(tmp) / "g", precision=args.precision)))
        x = tf.random.uniform([args.batch_size, args.size, args.size, 3], 0, 255)
        times = time_calls(lambda: m.translate(x)["images"].numpy(), args.runs)
    print(json.dumps({
        "bench": "inference", "size": args.size, "batch_size": args.batch_size, "netG": cfg.netG,
        "precision": args.precision, "runs": args.runs, **summary(times, "batch", args.batch_size),
        "sec_per_image": round(statistics.median(times) / args.batch_size, 4),
        "devices": [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"],
        "cpus": os.cpu_count(), "machine": platform.machine(), "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()
