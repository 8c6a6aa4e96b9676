"""The tf.distribute strategy a run trains under, and which process of several is the chief."""
from __future__ import annotations

import json
import os

import tensorflow as tf

from cyclegan_tf.errors import UserError


def make_strategy(name: str, batch_size: int = 1) -> tf.distribute.Strategy:
    """auto: all GPUs when the batch splits evenly over them, one GPU otherwise, else the CPU."""
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        if len(gpus) > 1 and batch_size % len(gpus) == 0:
            name = "mirrored"
        elif gpus:
            return tf.distribute.OneDeviceStrategy(gpus[0].name)
        else:
            name = "default"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        # Several CPU devices (logical ones, as in the tests): TF picks collective all-reduce, whose keys
        # restart with every strategy, so a second strategy in one process clashes with the first's
        # ("Shape mismatch in the collective instance"). Reducing on one device is as fast on one host.
        return tf.distribute.MirroredStrategy(cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise UserError("--strategy=multi_worker needs the TF_CONFIG environment variable (docs/training.md)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise UserError(f"--strategy={name}: choose auto, default, mirrored or multi_worker")


def is_chief() -> bool:
    """The process that writes checkpoints, summaries and logs: the chief, else worker 0."""
    tf_config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    task, cluster = tf_config.get("task", {}), tf_config.get("cluster", {})
    if not task or task.get("type") == "chief":
        return True
    return task.get("type") == "worker" and task.get("index", 0) == 0 and "chief" not in cluster
