"""Seconds per training step of a model (CycleGAN by default: resnet, 70×70 PatchGAN, pool 50).

  python bench/train_step.py --size 256 --steps 10 [--batch_size 1] [--precision fp32|bf16|fp16]
      [--jit_compile] [--recompute] [--strategy auto] [--model cycle_gan|pix2pix|cut|fastcut]

Times the distributed training step alone (inputs are fixed tensors already on the device) after
two warm-up steps. Prints one JSON line: median/min/max seconds per step, images/s, peak memory
(the process's peak RSS on a CPU; the GPU allocator's peak on a GPU).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from timing import summary, time_calls  # noqa: E402 - bench/timing.py

from cyclegan_tf import models  # noqa: E402
from cyclegan_tf.config import TrainConfig  # noqa: E402
from cyclegan_tf.distribute import make_strategy  # noqa: E402
from cyclegan_tf.options import PRECISIONS  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--netG", default="")
    p.add_argument("--jit_compile", action="store_true")
    p.add_argument("--recompute", action="store_true")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--strategy", default="auto")
    p.add_argument("--model", default=models.DEFAULT, choices=models.names())
    args = p.parse_args()
    cfg = TrainConfig(model=args.model, image_size=args.size, batch_size=args.batch_size, netG=args.netG,
                      jit_compile=args.jit_compile, recompute=args.recompute, precision=args.precision,
                      strategy=args.strategy)
    model_cls = models.get(cfg.model)
    cfg = model_cls.configure(cfg, cfg.changed()).resolved()
    strategy = make_strategy(cfg.strategy, cfg.batch_size)
    with strategy.scope():
        model = model_cls(cfg, 1000, cfg.batch_size)
    shape = [cfg.batch_size, args.size, args.size, 3]
    ds = tf.data.Dataset.from_tensors((tf.random.uniform(shape, -1, 1), tf.random.uniform(shape, -1, 1))).repeat()
    x, y = next(iter(strategy.experimental_distribute_dataset(ds)))
    step = model.make_train_step(strategy)
    times = time_calls(lambda: bool(step(x, y)["finite"]), args.steps)  # reading the flag waits for the step
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        peak = tf.config.experimental.get_memory_info(gpus[0].name)["peak"] / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "bench": "train_step", "model": cfg.model, "size": args.size, "batch_size": args.batch_size,
        "netG": cfg.netG, "precision": cfg.precision, "jit_compile": args.jit_compile, "recompute": args.recompute,
        "replicas": strategy.num_replicas_in_sync, "steps": args.steps,
        **summary(times, "step", args.batch_size),
        "peak_memory_mb": round(peak), "memory": "gpu" if gpus else "rss",
        "devices": [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"],
        "cpus": os.cpu_count(), "machine": platform.machine(), "tensorflow": tf.__version__}))


if __name__ == "__main__":
    main()
