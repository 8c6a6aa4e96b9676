"""Seconds per training step of a model (CycleGAN by default: resnet, 70×70 PatchGAN, pool 50).

  python bench/train_step.py --size 256 --steps 10 [--batch_size 1] [--precision fp32|bf16|fp16]
      [--jit_compile] [--recompute] [--strategy auto] [--model cycle_gan|pix2pix|cut|fastcut|pix2pixhd]
      [--width W] [--warmup 2] [--set OPTION=VALUE ...]

Times the distributed training step alone (inputs are fixed tensors already on the device) after
`--warmup` steps, on images --size high and --width (default --size) wide. `--set` gives any option of
train.py or of the model (e.g. --set netG=local --set no_vgg_loss=true); `--set vgg_weights=random`
gives pix2pixHD's VGG loss randomly initialised weights (the same cost as ImageNet's, which these
machines cannot download). Prints one JSON line: median/min/max seconds per step, images/s, peak memory
(the process's peak RSS on a CPU; the GPU allocator's peak on a GPU).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from timing import summary, time_calls  # noqa: E402 - bench/timing.py

from cyclegan_tf import models  # noqa: E402
from cyclegan_tf.config import TrainConfig, fields  # noqa: E402
from cyclegan_tf.options import PRECISIONS  # noqa: E402
from cyclegan_tf.training.strategy import make_strategy  # noqa: E402


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
    p.add_argument("--width", type=int, default=0)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--set", action="append", default=[], metavar="OPTION=VALUE")
    args = p.parse_args()
    common = {f.name for f in fields()}
    given = dict(_parse(s) for s in args.set)
    flags = dict(model=args.model, image_size=args.size, batch_size=args.batch_size, netG=args.netG,
                 jit_compile=args.jit_compile, recompute=args.recompute, precision=args.precision,
                 strategy=args.strategy)
    cfg = TrainConfig(**flags | {k: v for k, v in given.items() if k in common},
                      extra={k: v for k, v in given.items() if k not in common})
    model_cls = models.get(cfg.model)
    cfg = model_cls.configure(cfg, cfg.changed()).resolved()
    strategy = make_strategy(cfg.strategy, cfg.batch_size)
    with strategy.scope():
        model = model_cls(cfg, 1000, cfg.batch_size)
    cx, cy = (k.channels for k in model_cls.kinds(cfg))  # --set input_nc=1 --set output_nc=1: grey domains
    shape = [cfg.batch_size, args.size, args.width or args.size]
    ds = tf.data.Dataset.from_tensors((tf.random.uniform([*shape, cx], -1, 1),
                                       tf.random.uniform([*shape, cy], -1, 1))).repeat()
    x, y = next(iter(strategy.experimental_distribute_dataset(ds)))
    step = model.make_train_step(strategy)
    # reading the flag waits for the step
    times = time_calls(lambda: bool(step(x, y)["finite"]), args.steps, args.warmup)
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:
        peak = tf.config.experimental.get_memory_info(gpus[0].name)["peak"] / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "bench": "train_step", "model": cfg.model, "size": args.size, "width": args.width or args.size,
        "batch_size": args.batch_size, "options": {k: v for k, v in given.items() if k != "vgg_weights"},
        "netG": cfg.netG, "channels": [cx, cy],
        "precision": cfg.precision, "jit_compile": args.jit_compile, "recompute": args.recompute,
        "replicas": strategy.num_replicas_in_sync, "steps": args.steps,
        **summary(times, "step", args.batch_size),
        "peak_memory_mb": round(peak), "memory": "gpu" if gpus else "rss",
        "devices": [d.name for d in tf.config.list_logical_devices() if d.device_type != "CPU"] or ["CPU"],
        "cpus": os.cpu_count(), "machine": platform.machine(), "tensorflow": tf.__version__}))


def _parse(assignment: str) -> tuple[str, object]:
    """OPTION=VALUE with VALUE read as JSON where it can be (numbers, true/false), else as text."""
    name, _, value = assignment.partition("=")
    if name == "vgg_weights" and value == "random":
        return name, _random_vgg()
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _random_vgg() -> str:
    import keras

    path = os.path.join(tempfile.mkdtemp(), "vgg19_random.weights.h5")
    keras.applications.VGG19(include_top=False, weights=None).save_weights(path)
    return path


if __name__ == "__main__":
    main()
