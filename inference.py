"""Translates images with an exported model (vanhuyz's form keeps working).

  python inference.py --model man2woman --input test.jpg --output out.jpg
  python inference.py --model pretrained/man2woman --input photos/ --output translated/ --html
  python inference.py --model man2woman --input huge.jpg --output out.jpg --tile 512 --overlap 64
  python inference.py --model apple2orange.pb --input in.jpg --output out.jpg   # vanhuyz's frozen graph
"""
from __future__ import annotations

from cyclegan_tf import console

console.quiet_tensorflow()  # before TensorFlow and absl: their start-up chatter is not for users

from absl import app, flags  # noqa: E402

from cyclegan_tf.errors import UserError, guarded  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "", "SavedModel folder from export_graph.py, or its name under --export_dir; or "
                    "vanhuyz's frozen graph (a .pb file).")
flags.DEFINE_string("input", "input_sample.jpg", "An image file, a folder of images, or a glob.")
flags.DEFINE_string("output", "output_sample.jpg", "Output file (single input; format from its extension) "
                    "or folder.")
flags.DEFINE_integer("image_size", 0, "0: keep each input's size; S > 0: vanhuyz's square mode, S×S outputs.")
flags.DEFINE_integer("batch_size", None, "Images per call (consecutive images of equal size are batched; default 4); "
                     "with --tile, also tiles per call, and the default is 2 (4 tiles took 0.5 GB more memory).")
flags.DEFINE_string("output_format", "", "Folder mode: png, jpg, webp, tif or npy (default: the input's format "
                    "where it holds the output, else png, else tif).")
flags.DEFINE_string("format", "", "The former name of --output_format.")
flags.DEFINE_integer("quality", 95, "JPEG/WebP quality.")
flags.DEFINE_bool("side_by_side", False, "Write input | output strips.")
flags.DEFINE_bool("html", False, "Also write index.html, a gallery of inputs and outputs.")
flags.DEFINE_string("export_dir", "pretrained", "Where --model names are looked up.")
flags.DEFINE_integer("tile", 0, "Translate images larger than this (px, either side) in overlapping tiles of this "
                     "size, blended smoothly: bounded memory for large photos. 0: whole images.")
flags.DEFINE_integer("overlap", 64, "Pixels shared by neighbouring tiles (--tile).")
flags.DEFINE_enum("norm_stats", "global", ["global", "tile"], "With --tile: 'global' normalises every tile with "
                  "the whole image's norm statistics (measured on a copy --stats_size px long), so tiles do not "
                  "drift apart in colour; 'tile': each tile's own (plain tiling, seams show).")
flags.DEFINE_integer("stats_size", 1024, "Long side (px) of the downscaled copy --norm_stats=global measures.")


@guarded
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected argument {argv[1]!r} (flags take the form --name=value)")
    if not FLAGS.model:
        raise UserError("--model is required: a SavedModel folder from export_graph.py (or a frozen .pb)")
    if FLAGS.format and FLAGS.output_format and FLAGS.format != FLAGS.output_format:
        raise UserError(f"--format={FLAGS.format} and --output_format={FLAGS.output_format}: give one")
    batch_size = (2 if FLAGS.tile else 4) if FLAGS.batch_size is None else FLAGS.batch_size
    if batch_size < 1 or FLAGS.image_size < 0:
        raise UserError("--batch_size must be at least 1 and --image_size at least 0")
    from cyclegan_tf.deploy.translate import timed_run  # TensorFlow loads here

    print(timed_run(model=FLAGS.model, input_pattern=FLAGS.input, output=FLAGS.output, batch_size=batch_size,
                    image_size=FLAGS.image_size, fmt=FLAGS.output_format or FLAGS.format,
                    side_by_side=FLAGS.side_by_side,
                    write_html=FLAGS.html, quality=FLAGS.quality, export_dir=FLAGS.export_dir, tile=FLAGS.tile,
                    overlap=FLAGS.overlap, norm_stats=FLAGS.norm_stats, stats_size=FLAGS.stats_size))


if __name__ == "__main__":
    app.run(main)
