"""Exports a trained run's generators as SavedModels (vanhuyz's flags keep working).

  python export_graph.py --checkpoint_dir checkpoints/20261122-1030 --XtoY_model man2woman --YtoX_model woman2man
  → pretrained/man2woman/ and pretrained/woman2man/, loadable with plain tf.saved_model.load.
  --XtoY_model man2woman.pb (vanhuyz's form) also writes pretrained/man2woman.pb, his frozen graph.
  python export_graph.py --checkpoint_dir checkpoints/20261122-1030 --checkpoint best   # the best by --keep_best
  python export_graph.py --from_pytorch latest_net_G.pth --XtoY_model horse2zebra   # an official PyTorch generator
  python export_graph.py --from_frozen_graph apple2orange.pb --XtoY_model apple2orange   # vanhuyz's .pb, wrapped
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from cyclegan_tf import console

console.quiet_tensorflow()  # before TensorFlow and absl: their start-up chatter is not for users

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
flags.DEFINE_string("checkpoint", "latest", "Which checkpoint of the run: latest (the newest intact one), best "
                    "(kept by train.py --keep_best) or a step number N (ckpt-N).")
flags.DEFINE_bool("onnx", False, "Also write <name>.onnx (translate_portable: the translation with direct convs) "
                  "with tf2onnx.")
flags.DEFINE_list("tflite", [], "Also write LiteRT files of each export: fp32 → <name>.tflite, fp16 → "
                  "<name>.fp16.tflite (half-size weights), int8 → <name>.int8.tflite (dynamic-range quantisation).")
flags.DEFINE_integer("tflite_size", -1, "Input side of the .tflite files (float32 [1, S, S, C] in the input's units); "
                     "-1: the run's training image_size; 0: any size (the interpreter's resize_tensor_input).")
flags.DEFINE_bool("web", False, "Also write <export_dir>/inference.html, a page that translates images in the "
                  "browser, offline (ONNX Runtime Web; implies --onnx). Serve the folder: "
                  "python -m http.server -d pretrained 8000.")
flags.DEFINE_string("from_pytorch", "", "Export a generator trained with the official PyTorch code instead of a run: "
                    "its .pth file (junyanz's ResnetGenerator/UnetGenerator, CUT's, pix2pixHD's global/local), written "
                    "as the XtoY export; the architecture is read from the file (docs/importing.md).")
flags.DEFINE_string("from_frozen_graph", "", "Wrap a frozen graph of vanhuyz's export_graph.py (.pb) into a "
                    "SavedModel of ours, written as the XtoY export (for folders, --tile with --norm_stats tile, "
                    "the Python API and LiteRT).")
flags.DEFINE_string("netG", "", "--from_pytorch: the generator's architecture, where the file's should be overridden.")
flags.DEFINE_integer("ngf", 0, "--from_pytorch: filters of the first conv (0: from the file).")
flags.DEFINE_enum("norm", "", ["", "instance", "batch", "none"], "--from_pytorch: the norm (default: batch where the "
                  "file has batch norms, else instance; a file cannot tell instance from none).")
flags.DEFINE_integer("label_nc", -1, "--from_pytorch, pix2pixHD: label classes of the input (-1: the file's input "
                     "channels less the instance edge map's one; 0: RGB inputs).")
flags.DEFINE_bool("no_instance", False, "--from_pytorch, pix2pixHD: the generator was trained without instance maps "
                  "(its inputs are the label_nc one-hot channels only).")
flags.DEFINE_enum("test_mode", "image", ["image", "eval", "train"], "Batch norm and dropout at test time: image (the "
                  "image's own statistics, dropout off: deterministic), eval (the running statistics, as the official "
                  "test.py --eval) or train (the batch's statistics and dropout on, as the official test.py without "
                  "--eval: each call random).")
flags.DEFINE_string("web_runtime", None, "The onnxruntime-web dist folder --web copies (default: "
                    "node_modules/onnxruntime-web/dist, which `npm ci` in the repository installs).")


@guarded
def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise UserError(f"unexpected argument {argv[1]!r} (flags take the form --name=value)")
    sources = [f for f in ("checkpoint_dir", "from_pytorch", "from_frozen_graph") if FLAGS[f].value]
    if len(sources) != 1:
        raise UserError("give --checkpoint_dir (a run folder written by train.py), --from_pytorch (an official .pth "
                        "file) or --from_frozen_graph (vanhuyz's .pb)" + (", not several" if sources else ""))
    logging.set_verbosity(logging.WARNING)
    if FLAGS.from_frozen_graph:
        _wrap_frozen()
        return
    if FLAGS.from_pytorch:
        with tempfile.TemporaryDirectory(prefix="imported-") as tmp:
            _export(_import(Path(tmp) / "run"))
        return
    from cyclegan_tf.training.runs import find_run

    _export(find_run(FLAGS.checkpoint_dir, "--checkpoint_dir"))


def _wrap_frozen() -> None:
    """--from_frozen_graph: vanhuyz's .pb as a SavedModel of ours, and the formats beside it."""
    from cyclegan_tf.deploy import frozen, savedmodel

    if not FLAGS.XtoY_model or savedmodel.model_name(FLAGS.XtoY_model) != FLAGS.XtoY_model or FLAGS.web:
        raise UserError("--from_frozen_graph writes a SavedModel (and --onnx, --tflite beside it): give --XtoY_model "
                        "a name without .pb, and no --web (the page needs our exports' portable signature)")
    litert, _ = _deploy_tools()
    target = savedmodel.export_targets({"XtoY": FLAGS.XtoY_model}, ["XtoY"], FLAGS.export_dir)["XtoY"]
    print(f"exported XtoY to {frozen.export(FLAGS.from_frozen_graph, target)} (vanhuyz's graph, wrapped)")
    _write_beside(savedmodel, "XtoY", target, FLAGS.XtoY_model, frozen.read(FLAGS.from_frozen_graph).size, litert)


def _import(folder: Path) -> Path:
    """--from_pytorch: the official generator as a run folder of ours (checkpoint 0)."""
    if FLAGS.checkpoint != "latest":
        raise UserError(f"--checkpoint={FLAGS.checkpoint} chooses among a run's checkpoints; --from_pytorch has one")
    if FLAGS.YtoX_model and FLAGS["YtoX_model"].present:
        print(f"note: --from_pytorch exports one generator, as --XtoY_model; --YtoX_model={FLAGS.YtoX_model} is "
              "skipped (import the other direction's file in a second call)")
    from cyclegan_tf import models
    from cyclegan_tf.networks import official  # TensorFlow loads here
    from cyclegan_tf.training.runs import write_imported

    given = {k: FLAGS[k].value for k in ("netG", "ngf", "norm") if FLAGS[k].value}
    G, arch = official.import_generator(FLAGS.from_pytorch, **given)
    options = arch.options() | official.label_options(arch, FLAGS.label_nc, FLAGS.no_instance)
    print(f"read {FLAGS.from_pytorch}: {arch.describe()}")
    write_imported(folder, G, options, models.for_official(arch.family).name, Path(FLAGS.from_pytorch).name)
    return folder


def _export(run: Path) -> None:
    """The exports of a run folder (train.py's, or an imported generator's)."""
    from cyclegan_tf.atomic import uninterrupted
    from cyclegan_tf.deploy import savedmodel  # TensorFlow loads here
    from cyclegan_tf.training.runs import read_run

    cfg, model_cls, prefix = read_run(run, FLAGS.checkpoint)
    if FLAGS.checkpoint != "latest":
        print(f"exporting {run}'s checkpoint {Path(prefix).name} (--checkpoint={FLAGS.checkpoint})")
    names = {d: FLAGS[f"{d}_model"].value for d in ("XtoY", "YtoX")}
    if FLAGS.from_pytorch:
        names["YtoX"] = ""
    for direction, value in names.items():
        if value and direction not in model_cls.exports and FLAGS[f"{direction}_model"].present:
            print(f"note: {run} is a {cfg.model} run without a {direction} generator; "
                  f"--{direction}_model={value} is skipped")
    targets = savedmodel.export_targets(names, model_cls.exports, FLAGS.export_dir)
    kinds = {d: model_cls.exported_kinds(cfg, d) for d in targets}
    _check_pixels(kinds, names)
    litert, runtime = _deploy_tools()
    for target in targets.values():
        savedmodel.check_target(target)  # every refusal before the first export is written
    written: dict[str, Path] = {}
    try:
        # All exports are written first and swapped in together: a failure leaves every previous one as it was.
        for direction, target in targets.items():
            written[direction] = savedmodel.write(run, direction, target, FLAGS.image_size, FLAGS.precision,
                                                  FLAGS.checkpoint, FLAGS.test_mode)
        with uninterrupted():  # one Ctrl-C must not leave XtoY new and YtoX old
            for direction, target in targets.items():
                print(f"exported {direction} to {savedmodel.commit(written[direction], target)}")
    finally:
        for tmp in written.values():
            savedmodel.discard(tmp)
    for direction, target in targets.items():
        _write_beside(savedmodel, direction, target, names[direction], cfg.image_size, litert)
    if runtime is not None:
        from cyclegan_tf.deploy import web

        models = [t.relative_to(FLAGS.export_dir).as_posix() for t in targets.values()]
        page = web.write_page(FLAGS.export_dir, models, runtime,
                              {m: tuple(k.channels for k in kinds[d]) for m, d in zip(models, targets)})
        print(f"wrote {page}: serve it with `python -m http.server -d {FLAGS.export_dir} 8000` and open "
              f"http://127.0.0.1:8000/{page.name}")


def _check_pixels(kinds: dict, names: dict[str, str]) -> None:
    """The formats that carry only some pixels, refused before anything is written."""
    from cyclegan_tf.deploy.savedmodel import model_name

    for direction, (k_in, k_out) in kinds.items():
        said = f"{k_in.describe()} → {k_out.describe()}"
        if model_name(names[direction]) != names[direction] and not (k_in.rgb and k_out.rgb):
            raise UserError(f"--{direction}_model={names[direction]}: vanhuyz's frozen graph carries 8-bit RGB JPEGs, "
                            f"and this export translates {said}; drop the .pb (the SavedModel, --onnx and --tflite "
                            "carry any pixels)")
        if FLAGS.web and any(k.dtype != "uint8" or k.channels not in (1, 3) or k.lo != (0.0,) or k.hi != (255.0,)
                             for k in (k_in, k_out)):
            raise UserError(f"--web: the browser page shows 8-bit grey and RGB images, and {direction} translates "
                            f"{said}; drop --web (--onnx carries any pixels)")


def _deploy_tools() -> tuple:
    """(litert, the ONNX Runtime Web folder), each None unless --tflite or --web asks for it; their flags are
    checked here, before anything is written."""
    litert = runtime = None
    if FLAGS.tflite:
        from cyclegan_tf.deploy import litert

        unknown = [v for v in FLAGS.tflite if v not in litert.VARIANTS]
        if unknown:
            raise UserError(f"--tflite={','.join(FLAGS.tflite)}: {unknown[0]} is not one of "
                            f"{', '.join(litert.VARIANTS)}")
        if FLAGS.precision != "fp32" or FLAGS.image_size:
            raise UserError("--tflite converts an fp32 export of any size: leave out --precision and --image_size "
                            "(the variants choose their own storage; --tflite_size the input size)")
    if FLAGS.web:
        from cyclegan_tf.deploy import web

        runtime = web.find_runtime(FLAGS.web_runtime)
    return litert, runtime


def _write_beside(savedmodel, direction: str, target: Path, name: str, train_size: int, litert) -> None:
    """The other formats of one committed export, beside it: vanhuyz's frozen graph (a name ending in .pb),
    LiteRT files (--tflite), ONNX (--onnx, --web)."""
    if savedmodel.model_name(name) != name:
        size = FLAGS.image_size or train_size
        frozen = savedmodel.to_frozen_graph(target, target.parent / f"{target.name}.pb", size)
        print(f"exported {direction} to {frozen} (frozen graph: input_image [{size}, {size}, 3] in [-1, 1] → "
              "output_image JPEG bytes)")
    for variant in FLAGS.tflite:
        size = train_size if FLAGS.tflite_size < 0 else FLAGS.tflite_size
        file = f"{target.name}.tflite" if variant == "fp32" else f"{target.name}.{variant}.tflite"
        written = litert.to_tflite(target, target.parent / file, variant, size)
        print(f"exported {direction} to {written} (LiteRT {variant}, input "
              f"{f'[1, {size}, {size}, C]' if size else 'any size'})")
    if FLAGS.onnx or FLAGS.web:
        print(f"exported {direction} to {savedmodel.to_onnx(target, target.parent / f'{target.name}.onnx')}")


if __name__ == "__main__":
    app.run(main)
