"""Trains a CycleGAN (vanhuyz's flags keep working).

  python train.py --X man.tfrecords --Y woman.tfrecords
  python train.py --load_model 20261122-1030          # resume a run under checkpoints/
  tensorboard --logdir checkpoints/
"""
from __future__ import annotations

import dataclasses
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter is not for users

from absl import app, flags, logging  # noqa: E402

from cyclegan_tf.config import TrainConfig  # noqa: E402
from cyclegan_tf.errors import guarded  # noqa: E402

FLAGS = flags.FLAGS
for _f in dataclasses.fields(TrainConfig):
    _help, _choices = _f.metadata["help"], _f.metadata["choices"]
    if _choices:
        flags.DEFINE_enum(_f.name, _f.default, list(_choices), _help)
    else:
        {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
         str: flags.DEFINE_string}[type(_f.default)](_f.name, _f.default, _help)


@guarded
def main(argv: list[str]) -> int:
    if len(argv) > 1:
        from cyclegan_tf.errors import UserError

        raise UserError(f"unexpected argument {argv[1]!r} (flags take the form --name=value)")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint saver logs every save at INFO
    from cyclegan_tf.loop import train  # TensorFlow loads here

    cfg = TrainConfig(**{f.name: FLAGS[f.name].value for f in dataclasses.fields(TrainConfig)})
    explicit = {f.name for f in dataclasses.fields(TrainConfig) if FLAGS[f.name].present}
    return train(cfg, explicit)


if __name__ == "__main__":
    app.run(lambda argv: sys.exit(main(argv)))
