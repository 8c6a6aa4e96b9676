"""Trains a CycleGAN, or another model of the family with --model (vanhuyz's flags keep working).

  python train.py --X man.tfrecords --Y woman.tfrecords
  python train.py --load_model 20261122-1030          # resume a run under checkpoints/
  tensorboard --logdir checkpoints/
"""
from __future__ import annotations

import os
import sys

from cyclegan_tf import console

console.quiet_tensorflow()  # before TensorFlow and absl: their start-up chatter is not for users

from absl import app, flags, logging  # noqa: E402

from cyclegan_tf import config, models  # noqa: E402
from cyclegan_tf.errors import UserError, guarded  # noqa: E402

FLAGS = flags.FLAGS
_DEFINE = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float, str: flags.DEFINE_string}


def _define(name: str, default, help: str, choices) -> None:  # noqa: A002 - absl's name
    if choices:
        flags.DEFINE_enum(name, default, list(choices), help)
    else:
        _DEFINE[type(default)](name, default, help)


for _f in config.fields():
    _define(_f.name, _f.default, _f.metadata["help"], _f.metadata["choices"])
try:
    _MODELS = models.all_models()  # their own options become flags too
except UserError as _e:
    sys.exit(f"error: {_e}")
for _option in {o.name: o for m in _MODELS for o in m.options}.values():
    _define(_option.name, _option.default, f"{_option.help} (--model "
            f"{'/'.join(m.name for m in _MODELS if _option in m.options)})", _option.choices)


@guarded
def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise UserError(f"unexpected argument {argv[1]!r} (flags take the form --name=value)")
    logging.set_verbosity(logging.WARNING)  # TensorFlow's checkpoint saver logs every save at INFO
    from cyclegan_tf.training.loop import train

    common = {f.name for f in config.fields()}
    own = {o.name for m in _MODELS for o in m.options} - common
    cfg = config.TrainConfig(**{k: FLAGS[k].value for k in common},
                             extra={k: FLAGS[k].value for k in own if FLAGS[k].present})
    return train(cfg, {k for k in common | own if FLAGS[k].present})


def _run(argv: list[str]) -> None:
    status = main(argv) or 0
    # Everything this run wrote is closed and flushed by now (checkpoints, events, flags.json). Skipping
    # the interpreter's teardown of TensorFlow saves seconds on every run (docs/benchmarks.md).
    sys.stdout.flush()
    console.flush()
    os._exit(status)


if __name__ == "__main__":
    app.run(_run)
