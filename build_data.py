"""Turns two folders of images (or TensorFlow Datasets splits) into TFRecords (vanhuyz's flags keep working).

  python build_data.py --X_input_dir men/ --Y_input_dir women/ \
      --X_output_file man.tfrecords --Y_output_file woman.tfrecords
  python build_data.py --tfds_name cycle_gan/horse2zebra --X_output_file horse.tfrecords \
      --Y_output_file zebra.tfrecords
  python build_data.py --X_tfds mnist:train --Y_tfds svhn_cropped:train --X_output_file mnist.tfrecords \
      --Y_output_file svhn.tfrecords                                   # one TFDS dataset per domain
  python build_data.py --paired --X_input_dir facades/train --output_file facades.tfrecords   # A|B images
  python build_data.py --X_input_dir ct/ --Y_input_dir mr/ --X_range -1000,2000 ...   # 16-bit, float, N bands
"""
from __future__ import annotations

import os
import sys

from cyclegan_tf import console

console.quiet_tensorflow()  # before TensorFlow and absl: their start-up chatter is not for users

from absl import app, flags, logging  # noqa: E402

from cyclegan_tf.data import convert  # noqa: E402
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
flags.DEFINE_string("X_tfds", None, "Domain X from a TensorFlow Datasets split, NAME:SPLIT (e.g. mnist:train, "
                    "mnist:train[:1000]), instead of --X_input_dir; needs --X_output_file.")
flags.DEFINE_string("Y_tfds", None, "Domain Y from a TensorFlow Datasets split, NAME:SPLIT (e.g. "
                    "svhn_cropped:train), instead of --Y_input_dir; needs --Y_output_file.")
flags.DEFINE_string("tfds_data_dir", None, "With --tfds_name or --X_tfds/--Y_tfds: the TFDS data folder, where "
                    "prepared datasets are read and downloads go (default ~/tensorflow_datasets).")
flags.DEFINE_bool("paired", False, "pix2pix records: A|B images in --X_input_dir, or --X_input_dir and "
                  "--Y_input_dir matched by file stem.")
flags.DEFINE_string("output_file", "data/tfrecords/paired.tfrecords", "With --paired: the output file.")
_CHANNELS = ("Channels of {}: 0 takes them from the files; 1 or 3 makes every 8- and 16-bit image an 8-bit grey or "
             "RGB picture (other images must have them already).")
_RANGE = ("Values of {} mapped to the networks' [-1, 1]: lo,hi (e.g. -1000,2000 for a CT window), lo,hi;lo,hi;… per "
          "channel, 'auto' (the domain's 0.5 and 99.5 percentiles, per channel) or 'full' (the type's range; the "
          "extremes for floats). Default: 0,255 for 8-bit images, auto otherwise. Values outside are clipped.")
flags.DEFINE_integer("X_channels", 0, _CHANNELS.format("X (with --paired: A)"))
flags.DEFINE_integer("Y_channels", 0, _CHANNELS.format("Y (with --paired: B)"))
flags.DEFINE_string("X_range", "", _RANGE.format("X (with --paired: A)"))
flags.DEFINE_string("Y_range", "", _RANGE.format("Y (with --paired: B)"))


def _explicit(name: str) -> bool:
    return FLAGS[name].present


def _paired_output() -> tuple[str, str]:
    """(flag, path) of the one paired output; vanhuyz's --X_output_file is taken for it when given alone."""
    if _explicit("Y_output_file"):
        raise UserError(f"--Y_output_file={FLAGS.Y_output_file}: paired records are one file; "
                        "give it as --output_file")
    if _explicit("X_output_file"):
        if _explicit("output_file") and FLAGS.output_file != FLAGS.X_output_file:
            raise UserError(f"--X_output_file={FLAGS.X_output_file} and --output_file={FLAGS.output_file}: "
                            "paired records are one file; give only --output_file")
        return "--X_output_file", FLAGS.X_output_file
    return "--output_file", FLAGS.output_file


def _tfds_domains() -> dict[str, tuple[str, str]]:
    """{domain: (NAME, SPLIT)} of --X_tfds/--Y_tfds, after every check that needs no TensorFlow Datasets."""
    domains = {}
    for d in "XY":
        if not _explicit(f"{d}_tfds"):
            continue
        given = f"--{d}_tfds={FLAGS[f'{d}_tfds'].value}"
        if FLAGS.tfds_name:
            raise UserError(f"{given} and --tfds_name={FLAGS.tfds_name}: give one (--tfds_name takes both domains "
                            "from the splits of one dataset, --X_tfds/--Y_tfds one dataset per domain)")
        if FLAGS.paired:
            raise UserError(f"{given}: --paired reads pairs from folders, not from TensorFlow Datasets")
        if _explicit("tfds_split"):
            raise UserError(f"{given} and --tfds_split={FLAGS.tfds_split}: --tfds_split goes with --tfds_name; "
                            "give the split in NAME:SPLIT")
        if _explicit(f"{d}_input_dir"):
            raise UserError(f"{given} and --{d}_input_dir={FLAGS[f'{d}_input_dir'].value} both give domain {d}: "
                            "give one")
        if not _explicit(f"{d}_output_file"):
            # The default names vanhuyz's apple2orange files: MNIST written to apple.tfrecords is a trap.
            raise UserError(f"{given}: give --{d}_output_file too (where domain {d}'s records go)")
        domains[d] = convert.parse_tfds_spec(f"--{d}_tfds", FLAGS[f"{d}_tfds"].value)
    for d in "XY":
        if domains and d not in domains and not _explicit(f"{d}_input_dir") and _explicit(f"{d}_output_file"):
            # Building the other domain alone is allowed; an output named for this one says it was meant too.
            raise UserError(f"--{d}_output_file={FLAGS[f'{d}_output_file'].value}: domain {d} has no source; "
                            f"give --{d}_tfds or --{d}_input_dir")
    return domains


def _tfds_plans(domains: dict[str, tuple[str, str]], seed: int | None) -> list[convert.Plan]:
    """Domains from --X_tfds/--Y_tfds; a domain without one is read from its --*_input_dir if that is given,
    and otherwise not built (--X_tfds alone writes X only)."""
    folders = {d: convert.plan_folder(d, getattr(FLAGS, f"{d}_input_dir"), getattr(FLAGS, f"{d}_output_file"),
                                    flag=f"--{d}_input_dir", output_flag=f"--{d}_output_file",
                                    recursive=FLAGS.recursive, seed=seed)
               for d in "XY" if d not in domains and _explicit(f"{d}_input_dir")}  # checked before a download
    convert.check_outputs([(f"--{d}_output_file", getattr(FLAGS, f"{d}_output_file")) for d in "XY"
                         if d in domains or d in folders], FLAGS.num_shards)
    splits = [convert.TfdsSplit(name, split, getattr(FLAGS, f"{d}_output_file"), f"--{d}_output_file", d,
                              f"--{d}_tfds={FLAGS[f'{d}_tfds'].value}")
              for d, (name, split) in domains.items()]
    from_tfds = dict(zip(domains, convert.plan_tfds_splits(splits, data_dir=FLAGS.tfds_data_dir, seed=seed)))
    return [from_tfds[d] if d in from_tfds else folders[d] for d in "XY" if d in from_tfds or d in folders]


def _plans() -> list[convert.Plan]:
    """What to write, with every input checked (folder exists, has images) before anything is written."""
    seed = None if FLAGS.seed < 0 else FLAGS.seed
    domains = _tfds_domains()
    if domains:
        return _tfds_plans(domains, seed)
    if FLAGS.paired:
        if FLAGS.tfds_name:
            raise UserError(f"--tfds_name={FLAGS.tfds_name}: --paired reads pairs from folders, not from "
                            "TensorFlow Datasets")
        flag, output = _paired_output()
        y_dir = FLAGS.Y_input_dir if _explicit("Y_input_dir") else None
        return [convert.plan_paired(FLAGS.X_input_dir, y_dir, output, output_flag=flag, recursive=FLAGS.recursive,
                                  seed=seed)]
    outputs = [("--X_output_file", FLAGS.X_output_file), ("--Y_output_file", FLAGS.Y_output_file)]
    if FLAGS.tfds_name:
        splits = [s.strip() for s in FLAGS.tfds_split.split(",") if s.strip()]
        if not 1 <= len(splits) <= 2:
            raise UserError(f"--tfds_split={FLAGS.tfds_split}: give one or two splits, e.g. trainA,trainB")
        convert.check_outputs(outputs[:len(splits)], FLAGS.num_shards)  # before a download, not after it
        return convert.plan_tfds_splits([convert.TfdsSplit(FLAGS.tfds_name, s, out, flag)
                                       for s, (flag, out) in zip(splits, outputs)],
                                      data_dir=FLAGS.tfds_data_dir, seed=seed)
    return [convert.plan_folder(d, getattr(FLAGS, f"{d}_input_dir"), out, flag=f"--{d}_input_dir", output_flag=flag,
                              recursive=FLAGS.recursive, seed=seed)
            for d, (flag, out) in zip("XY", outputs)]


@guarded
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected argument {argv[1]!r} (flags take the form --name=value)")
    if FLAGS.num_shards < 1:
        raise UserError(f"--num_shards={FLAGS.num_shards}: must be at least 1")
    logging.set_verbosity(logging.WARNING)  # TensorFlow Datasets logs every dataset and split it opens at INFO
    # Both outputs are replaced together or not at all: a failure in Y keeps the previous X too.
    plans = _plans()
    for plan in plans:  # each part of a plan takes the flags of its domain (a pair's A: --X_*, B: --Y_*)
        plan.channels = tuple(FLAGS[f"{f[2:]}_channels"].value for f in plan.flags)
        plan.ranges = tuple(FLAGS[f"{f[2:]}_range"].value for f in plan.flags)
    for s in convert.build_all(plans, num_shards=FLAGS.num_shards, workers=FLAGS.num_workers):
        print(s.line())


def _run(argv: list[str]) -> None:
    status = main(argv) or 0
    # Every output is closed and renamed by now; skipping the interpreter's teardown of TensorFlow
    # saves more than a second on every run, as in train.py.
    sys.stdout.flush()
    console.flush()
    os._exit(status)


if __name__ == "__main__":
    app.run(_run)
