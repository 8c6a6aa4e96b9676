"""Seconds one evaluation during training costs (train.py --eval_every): a CycleGAN's two directions.

  python bench/evaluation.py --images 100 --size 64 --precision fp32|bf16 [--netG resnet_9blocks]

Builds a CycleGAN at the given size and precision (fresh weights: timing does not depend on training) and an
evaluator on `--images` held-out images per domain (synthetic textures), then times Evaluator.run: the first
call (which also computes and caches the real images' Inception features) and the second (what every later
evaluation costs). Prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cyclegan_tf import models
from cyclegan_tf.config import TrainConfig  # noqa: E402
from cyclegan_tf.data import synthetic  # noqa: E402
from cyclegan_tf.evaluation import during_training
from cyclegan_tf.options import PRECISIONS  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--images", type=int, default=100)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--netG", default="")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    args = p.parse_args()
    cfg = TrainConfig(model=models.DEFAULT, image_size=args.size, netG=args.netG, precision=args.precision,
                      keep_best="none").resolved()
    model_cls = models.get(cfg.model)
    model = model_cls(cfg, 1000, 1)
    x, y = (synthetic.textures(args.images, args.size, seed).astype(np.uint8) for seed in (0, 1))
    sets = [during_training.HeldOut("XtoY", x, y), during_training.HeldOut("YtoX", y, x)]
    with tempfile.TemporaryDirectory() as tmp:
        judge = during_training.Evaluator(cfg, model_cls, Path(tmp), sets, log=lambda _: None)
        writer = tf.summary.create_file_writer(tmp)
        times = []
        for step in (1, 2):
            start = time.perf_counter()
            judge.run(model, step, writer)
            times.append(time.perf_counter() - start)
    print(json.dumps({
        "bench": "evaluation", "images": args.images, "size": args.size, "netG": cfg.netG,
        "precision": args.precision, "first_sec": round(times[0], 2), "later_sec": round(times[1], 2),
        "cpus": os.cpu_count(), "machine": platform.machine(), "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()
