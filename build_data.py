"""Turns two folders of images into TFRecords (vanhuyz's flags keep working).

  python build_data.py --X_input_dir men/ --Y_input_dir women/ \
      --X_output_file man.tfrecords --Y_output_file woman.tfrecords
  python build_data.py --tfds_name cycle_gan/horse2zebra --X_output_file horse.tfrecords \
      --Y_output_file zebra.tfrecords
  python build_data.py --paired --X_input_dir facades/train --output_file facades.tfrecords   # A|B images
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up chatter is not for users

from absl import app, flags  # noqa: E402

from cyclegan_tf import build  # noqa: E402
from cyclegan_tf.errors import UserError, guarded  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("X_input_dir", "data/apple2orange/trainA", "Folder of domain X images.")
flags.DEFINE_string("Y_input_dir", "data/apple2orange/trainB", "Folder of domain Y images.")
flags.DEFINE_string("X_output_file", "data/tfrecords/apple.tfrecords", "TFRecord file for X.")
flags.DEFINE_string("Y_output_file", "data/tfrecords/orange.tfrecords", "TFRecord file for Y.")
flags.DEFINE_bool("recursive", False, "Also take images from subfolders.")
flags.DEFINE_integer("num_shards", 1, "Write name-0000i-of-0000N shards instead of one file.")
flags.DEFINE_integer("seed", 0, "Seed of the record order; -1 keeps the sorted file order.")
flags.DEFINE_integer("num_workers", 0, "Decoding threads (0: one per core).")
flags.DEFINE_string("tfds_name", None, "Read a TensorFlow Datasets dataset (e.g. cycle_gan/horse2zebra).")
flags.DEFINE_string("tfds_split", "trainA,trainB", "With --tfds_name: the splits for X and Y, comma-separated "
                    "(one split writes X only).")
flags.DEFINE_string("tfds_data_dir", None, "With --tfds_name: TFDS data folder (default ~/tensorflow_datasets).")
flags.DEFINE_bool("paired", False, "pix2pix records: A|B images in --X_input_dir, or --X_input_dir and "
                  "--Y_input_dir matched by file stem.")
flags.DEFINE_string("output_file", "data/tfrecords/paired.tfrecords", "With --paired: the output file.")


def _explicit(name: str) -> bool:
    return FLAGS[name].present


@guarded
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected argument {argv[1]!r} (flags take the form --name=value)")
    if FLAGS.num_shards < 1:
        raise UserError(f"--num_shards={FLAGS.num_shards}: must be at least 1")
    kw = dict(seed=None if FLAGS.seed < 0 else FLAGS.seed, num_shards=FLAGS.num_shards, workers=FLAGS.num_workers)
    if FLAGS.paired:
        y_dir = FLAGS.Y_input_dir if _explicit("Y_input_dir") else None
        summaries = [build.build_paired(FLAGS.X_input_dir, y_dir, FLAGS.output_file,
                                        recursive=FLAGS.recursive, **kw)]
    elif FLAGS.tfds_name:
        splits = [s.strip() for s in FLAGS.tfds_split.split(",") if s.strip()]
        if not 1 <= len(splits) <= 2:
            raise UserError(f"--tfds_split={FLAGS.tfds_split}: give one or two splits, e.g. trainA,trainB")
        outputs = [FLAGS.X_output_file, FLAGS.Y_output_file]
        summaries = [build.build_tfds(FLAGS.tfds_name, s, out, data_dir=FLAGS.tfds_data_dir, **kw)
                     for s, out in zip(splits, outputs)]
    else:
        summaries = [build.build_folder(d, getattr(FLAGS, f"{d}_input_dir"), getattr(FLAGS, f"{d}_output_file"),
                                        flag=f"--{d}_input_dir", recursive=FLAGS.recursive, **kw)
                     for d in ("X", "Y")]
    for s in summaries:
        print(s.line())


if __name__ == "__main__":
    app.run(main)
