"""Exports a trained run's generators as SavedModels (vanhuyz's flags keep working).

  python export_graph.py --checkpoint_dir checkpoints/20261122-1030 --XtoY_model man2woman --YtoX_model woman2man
  → pretrained/man2woman/ and pretrained/woman2man/, loadable with plain tf.saved_model.load.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter is not for users

from absl import app, flags, logging  # noqa: E402

from cyclegan_tf.errors import UserError, guarded  # noqa: E402
from cyclegan_tf.options import PRECISIONS  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint_dir", "", "Run folder of train.py (or a run name under checkpoints/).")
flags.DEFINE_string("XtoY_model", "apple2orange", "Name of the X→Y (G) export, or of a paired or one-sided "
                    "run's one generator; '' skips it.")
flags.DEFINE_string("YtoX_model", "orange2apple", "Name of the Y→X (F) export; '' skips it.")
flags.DEFINE_integer("image_size", 0, "0: any input size (padded to what the generator needs); "
                     "S > 0: resize inputs to S×S and back, as vanhuyz's export did.")
flags.DEFINE_string("export_dir", "pretrained", "Folder that receives the exports.")
flags.DEFINE_enum("precision", "fp32", list(PRECISIONS), "Type the exported graph computes in; bf16 is faster on "
                  "CPUs with AVX-512 BF16 or AMX (docs/benchmarks.md), fp16 on GPUs (inputs/outputs stay float32).")
flags.DEFINE_bool("onnx", False, "Also write <name>.onnx (the translate signature) with tf2onnx.")


@guarded
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected argument {argv[1]!r} (flags take the form --name=value)")
    if not FLAGS.checkpoint_dir:
        raise UserError("--checkpoint_dir is required: the run folder written by train.py")
    logging.set_verbosity(logging.WARNING)
    from cyclegan_tf.export import export, model_name, to_onnx  # TensorFlow loads here
    from cyclegan_tf.runs import find_run, read_run

    run = find_run(FLAGS.checkpoint_dir, "--checkpoint_dir")
    cfg, model_cls, _ = read_run(run)
    for direction in ("XtoY", "YtoX"):
        value = FLAGS[f"{direction}_model"].value
        if not value:
            continue
        if direction not in model_cls.exports:
            if FLAGS[f"{direction}_model"].present:
                print(f"note: {run} is a {cfg.model} run without a {direction} generator; "
                      f"--{direction}_model={value} is skipped")
            continue
        name = model_name(value)
        if name != value:
            print(f"note: {value} → {FLAGS.export_dir}/{name}/ (a SavedModel folder, not a frozen .pb)")
        path = export(run, direction, os.path.join(FLAGS.export_dir, name), FLAGS.image_size, FLAGS.precision)
        print(f"exported {direction} to {path}")
        if FLAGS.onnx:
            print(f"exported {direction} to {to_onnx(path, path.with_suffix('.onnx'))}")

if __name__ == "__main__":
    app.run(main)
