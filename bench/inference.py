"""Seconds per image of an exported generator (the SavedModel's `translate` signature).

  python bench/inference.py --size 256 --batch_size 1 --precision fp32|bf16|fp16 [--netG resnet_9blocks]

Builds a CycleGAN run folder with freshly initialised weights (timing does not depend on training),
exports G with export_graph's code at the given precision, loads it with plain tf.saved_model.load
and times `translate` on a fixed batch after two warm-up calls. Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from cyclegan_tf.config import TrainConfig  # noqa: E402
from cyclegan_tf.cyclegan import CycleGAN  # noqa: E402
from cyclegan_tf.export import export  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--netG", default="")
    p.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    args = p.parse_args()
    cfg = TrainConfig(image_size=args.size, netG=args.netG).resolved()
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        model = CycleGAN(cfg, 1000, 1)
        tf.train.Checkpoint(G=model.G, F=model.F, step=model.step).save(str(run / "ckpt"))
        cfg.save(run / "flags.json")
        m = tf.saved_model.load(str(export(run, "XtoY", Path(tmp) / "g", precision=args.precision)))
        x = tf.random.uniform([args.batch_size, args.size, args.size, 3], 0, 255)
        times = []
        for i in range(args.runs + 2):
            start = time.perf_counter()
            m.translate(x)["images"].numpy()
            if i >= 2:
                times.append(time.perf_counter() - start)
    med = statistics.median(times)
    print(json.dumps({
        "bench": "inference", "size": args.size, "batch_size": args.batch_size, "netG": cfg.netG,
        "precision": args.precision, "runs": args.runs, "sec_per_batch_median": round(med, 4),
        "sec_per_image": round(med / args.batch_size, 4), "images_per_sec": round(args.batch_size / med, 3),
        "sec_per_batch_min": round(min(times), 4), "sec_per_batch_max": round(max(times), 4),
        "devices": [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"],
        "cpus": os.cpu_count(), "machine": platform.machine(), "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()
