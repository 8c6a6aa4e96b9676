"""Scoring translations: FID/KID against real images, and ground-truth scores where pairs exist.

  python -m cyclegan_tf.evaluate --generated out/ --real data/shapescapes/testB [--truth data/shapescapes/testB]
  python -m cyclegan_tf.evaluate --model pretrained/photo2labels --input data/shapescapes/testB \
      --truth data/shapescapes/testA --labels
  python -m cyclegan_tf.evaluate --model pretrained/photo2labels --model pretrained/pix2pix_photo2labels \
      --identity --input data/shapescapes/testB --truth data/shapescapes/testA --labels   # side by side

- FID, KID and precision/recall/density/coverage (Naeem et al. 2020, k = 5) use the standard FID
  InceptionV3 pool3 features (cyclegan_tf.evaluation.inception). FID is biased upward for small n, so n is
  reported (and a warning given below 2048 images), and `--floor` adds the real-vs-real score of two
  halves of the real set: the best any model can get at that n.
- `--inception_weights PATH` (pytorch-fid's pt_inception-2015-12-05-6726825d.pth): the Inception
  Score of the generated images, mean and std over 10 splits.
- PSNR, SSIM, MAE and RMSE against a paired ground truth (files matched by name).
- `--labels`: outputs are label maps; each pixel is snapped to the nearest palette colour and scored
  with the paper's FCN-score protocol: per-pixel accuracy, mean per-class accuracy, mean class IoU.
- Any pixels (data/pixels.py): folders of 8-bit pictures are scored as RGB (grey ones replicated, noted);
  folders of other images (16-bit PNG, TIFF, .npy) as they are stored, every file of one kind. Against
  truth, MAE, RMSE, PSNR and SSIM are then in the images' units with the data range hi − lo of `--range`
  (default: the type's full range; an export's own range with --model), the mean over bands, each band's
  under "bands". FID/KID/IS need RGB photos: for other images they are not computed, and a note says why.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from cyclegan_tf import atomic
from cyclegan_tf.data import pixels
from cyclegan_tf.data.imagefiles import BadImage, Probe, find_images, load_pixels, open_rgb, probe
from cyclegan_tf.data.pixels import RGB, Kind
from cyclegan_tf.errors import UserError, exit_status

# The scores themselves, here under their old names too (evaluate.fid ...): the training loop uses metrics.
from cyclegan_tf.evaluation.metrics import (  # noqa: F401
    as_photos,
    band_errors,
    fid,
    inception_score,
    inception_view,
    kid,
    label_scores,
    mean_over_bands,
    prdc,
    psnr_ssim,
    snap,
)


def _read_each(folder: str | Path, read) -> list[tuple[Path, object]]:
    """(file, read(its bytes, its name)) for every image of a folder; one line naming a file that fails."""
    files = find_images(folder) if Path(folder).is_dir() else []
    if not files:
        raise UserError(f"{folder}: no images there")
    out = []
    for f in files:
        try:
            out.append((f, read(f.read_bytes(), f.name)))
        except (BadImage, OSError) as e:
            raise UserError(f"{f}: {e}") from None
    return out


def load_folder(folder: str | Path, size: tuple[int, int] | None = None) -> tuple[list[str], np.ndarray]:
    """(file stems, uint8 [N, H, W, 3]) of a folder's images, resized to `size` (W, H) if given."""
    stems, images = [], []
    for f, img in _read_each(folder, open_rgb):
        if size is not None and img.size != size:
            img = img.resize(size)
        stems.append(f.stem)
        images.append(np.asarray(img))
    if len({i.shape for i in images}) > 1:
        raise UserError(f"{folder}: images differ in size; scores need one size")
    return stems, np.stack(images)


def folder_kind(folder: str | Path, range_text: str = "", flag: str = "--range") -> tuple[Kind, bool, bool]:
    """(kind, pictures, grey) of a folder's images. With 8-bit pictures among them, every image is scored as
    8-bit RGB, as before kinds existed (grey: all of them grey, which RGB replicates); else by the channels
    and type every file shares, with the range `range_text` (default the type's full range)."""
    probes = _read_each(folder, probe)
    if any(p.picture for _, p in probes):
        return RGB, True, all(p.channels == 1 for _, p in probes)
    kinds: dict[tuple[int, str], tuple[Path, Probe]] = {}
    for f, p in probes:
        kinds.setdefault((p.channels, p.dtype), (f, p))  # each kind's first file, for the message
    if len(kinds) > 1:
        (a, pa), (b, pb) = list(kinds.values())[:2]
        raise UserError(f"{folder}: the images are not all of one kind: {a.name} is a {pa.describe()}, {b.name} a "
                        f"{pb.describe()}")
    (channels, dtype), = kinds
    return pixels.kind(channels, dtype, range_text, flag), False, False


def load_arrays(folder: str | Path, kind: Kind, size: tuple[int, int] | None = None) -> tuple[list[str], np.ndarray]:
    """(file stems, [N, H, W, C] of `kind`'s stored type) of a folder of images that are not 8-bit pictures,
    resized to `size` (W, H) if given as an export resizes (bicubic, antialiased)."""
    import tensorflow as tf

    stems, images = [], []
    for f, arr in _read_each(folder, lambda data, name: load_pixels(data, name, kind.channels, kind.dtype)):
        if size is not None and arr.shape[:2] != (size[1], size[0]):
            resized = tf.image.resize(arr, [size[1], size[0]], method="bicubic", antialias=True)
            arr = kind.to_stored(np.asarray(resized, np.float32))
        stems.append(f.stem)
        images.append(arr)
    if len({i.shape for i in images}) > 1:
        raise UserError(f"{folder}: images differ in size; scores need one size")
    return stems, np.stack(images)


PRDC_K = 5
FID_UNBIASED_N = 2048  # below this many images FID's upward bias is of the size of real differences


def distribution_scores(generated: np.ndarray, real: np.ndarray, floor: bool = False) -> dict:
    """n, FID, KID and (when both sets have more than PRDC_K images) PRDC of generated vs real images."""
    from cyclegan_tf.evaluation import inception

    fg, fr = inception.features(generated), inception.features(real)
    out = {"n_generated": len(fg), "n_real": len(fr), "fid": fid(fg, fr), "kid": kid(fg, fr)}
    if min(len(fg), len(fr)) > PRDC_K:
        out |= prdc(fr, fg, PRDC_K)
    if floor and len(fr) >= 4:
        half = len(fr) // 2
        out |= {"fid_real_floor": fid(fr[:half], fr[half:2 * half]), "kid_real_floor": kid(fr[:half], fr[half:])}
    return out


def inception_scores(generated: np.ndarray, weights: str | Path, splits: int = 10) -> dict[str, float]:
    """is_mean and is_std of the images, with pytorch-fid's Inception weights file at `weights`."""
    from cyclegan_tf.evaluation import inception

    logits, _ = inception.logits_and_features(generated, weights)
    mean, std = inception_score(logits, splits)
    return {"is_mean": mean, "is_std": std}


_warned: set[str] = set()


def _warn_once(key: str, line: str) -> None:
    """A warning on stderr, once per run (main() starts a run) whatever the number of columns."""
    if key not in _warned:
        _warned.add(key)
        print(f"warning: {line}", file=sys.stderr, flush=True)


GREY_NOTE = "grey images: FID/KID/IS on them with the channel replicated to RGB (grey replicated)"


def evaluate(generated: str | Path, real: str | Path | None = None, truth: str | Path | None = None,
             labels: bool = False, floor: bool = False, palette: np.ndarray | None = None,
             shown_as: str | None = None, inception_weights: str | Path | None = None,
             value_range: str = "", range_flag: str = "--range") -> dict:
    """All scores that the given folders allow (and the Inception Score with `inception_weights`). `shown_as`
    names the generated images in errors (for translations written to a temporary folder); `value_range` is
    --range (`range_flag` names where it came from), the data range of images that are not 8-bit pictures."""
    kind, pictures, grey = folder_kind(generated, value_range, range_flag)
    name = shown_as or generated
    stems, gen = load_folder(generated) if pictures else load_arrays(generated, kind)
    scores: dict = {"n": len(stems)}
    seen, note = (True, GREY_NOTE if grey else "") if pictures else inception_view(kind, str(name))
    if inception_weights and seen and len(gen) < 10:
        raise UserError(f"{name}: the Inception Score needs at least 10 images (one per split), found {len(gen)}")
    size = (gen.shape[2], gen.shape[1])
    r = _real(real, name, gen, pictures, kind, size) if real and seen else None
    if truth:
        scores |= _truth_scores(gen, stems, truth, pictures, kind, labels, palette, size)
    if r is not None:
        scores |= distribution_scores(as_photos(gen), as_photos(r), floor)
    if inception_weights and seen:
        scores |= inception_scores(as_photos(gen), inception_weights)
    if note and (real or inception_weights):
        scores["note"] = note
    return scores


def _load_like(folder: str | Path, pictures: bool, kind: Kind, size: tuple[int, int]) -> tuple[list[str], np.ndarray]:
    """A folder of real images or truth, read as the generated ones are and resized to theirs."""
    return load_folder(folder, size=size) if pictures else load_arrays(folder, kind, size)


def _real(real: str | Path, name: str | Path, gen: np.ndarray, pictures: bool, kind: Kind,
          size: tuple[int, int]) -> np.ndarray:
    """The real images for FID/KID, checked for their number (with warnings for small sets)."""
    _, r = _load_like(real, pictures, kind, size)
    for folder, images in ((name, gen), (real, r)):
        if len(images) < 2:  # a covariance needs two samples; FID of one image is undefined
            raise UserError(f"{folder}: FID/KID need at least 2 images per set, found {len(images)}")
    if min(len(gen), len(r)) <= PRDC_K:
        _warn_once("prdc", f"precision/recall/density/coverage need more than {PRDC_K} images per set "
                           f"(found {len(gen)} generated, {len(r)} real): left out")
    if min(len(gen), len(r)) < FID_UNBIASED_N:
        _warn_once("fid_n", f"FID is biased upward below {FID_UNBIASED_N} images per set (found {len(gen)} "
                            f"generated, {len(r)} real): compare FIDs only at the same n (--floor helps)")
    return r


def _truth_scores(gen: np.ndarray, stems: list[str], truth: str | Path, pictures: bool, kind: Kind, labels: bool,
                  palette: np.ndarray | None, size: tuple[int, int]) -> dict:
    """Scores against the ground truth matched by file name: the FCN protocol for label maps; else MAE and
    RMSE, and PSNR/SSIM (of 8-bit pictures as before kinds existed; of other images in their units)."""
    t_stems, t_imgs = _load_like(truth, pictures, kind, size)
    by_stem = dict(zip(t_stems, t_imgs))
    missing = [s for s in stems if s not in by_stem]
    if missing:
        raise UserError(f"{truth}: no ground truth for {missing[0]} (files are matched by name)")
    t = np.stack([by_stem[s] for s in stems])
    if labels:
        if not pictures:
            raise UserError(f"--labels: label maps are 8-bit RGB colours, not {kind.describe()} images")
        from cyclegan_tf.data import shapescapes

        pal = shapescapes.PALETTE if palette is None else palette
        return label_scores(gen, t, pal, shapescapes.CLASSES if palette is None else None)
    bands = band_errors(gen, t, kind.lo, kind.hi, ssim=not pictures)
    if pictures:  # uint8 with data range 255: PSNR/SSIM as ever, MAE and RMSE beside them
        errors = mean_over_bands(bands)
        return psnr_ssim(gen, t) | {"mae": errors["mae"], "rmse": errors["rmse"]}
    return mean_over_bands(bands) | ({"bands": bands} if kind.channels > 1 else {})


def table(scores: dict, title: str = "") -> str:
    rows = [(k, f"{v:.4f}" if isinstance(v, float) else str(v)) for k, v in scores.items() if not isinstance(v, dict)]
    width = max(len(k) for k, _ in rows)
    return "\n".join(([title] if title else []) + [f"  {k:<{width}}  {v}" for k, v in rows])


def comparison(columns: dict[str, dict], title: str = "") -> str:
    """Several models' scores side by side (one column each)."""
    names = list(columns)
    keys = [k for k in columns[names[0]] if not isinstance(columns[names[0]][k], dict)]
    cell = [[f"{c.get(k):.4f}" if isinstance(c.get(k), float) else str(c.get(k, "")) for c in columns.values()]
            for k in keys]
    widths = [max(len(n), *(len(row[i]) for row in cell)) for i, n in enumerate(names)]
    kw = max(len(k) for k in keys)
    lines = [f"  {'':<{kw}}  " + "  ".join(f"{n:>{w}}" for n, w in zip(names, widths))]
    lines += [f"  {k:<{kw}}  " + "  ".join(f"{v:>{w}}" for v, w in zip(row, widths)) for k, row in zip(keys, cell)]
    return "\n".join(([title] if title else []) + lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    _warned.clear()
    return exit_status(lambda: _report(_score(args), args.json))


def _report(columns: dict[str, dict], json_path: str | None) -> None:
    """Prints the scores (one table, or one column per model) and writes them as JSON if asked."""
    if len(columns) == 1:
        (name, scores), = columns.items()
        print(table(scores, f"scores of {name}"))
    else:
        scores = columns
        print(comparison(columns, "scores"))
    if json_path:
        try:
            atomic.write_text(json_path, json.dumps(scores, indent=2) + "\n")
        except OSError as e:
            raise OSError(e.errno, e.strerror, json_path) from None  # its name, not the temporary one


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cyclegan_tf.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--generated", action="append", default=[],
                   help="folder of translated images (repeat to compare several side by side)")
    p.add_argument("--model", action="append", default=[],
                   help="exported model: translate --input first (repeat to compare, e.g. CycleGAN and pix2pix)")
    p.add_argument("--input", help="with --model: the folder to translate")
    p.add_argument("--identity", action="store_true", help="also score --input itself (the identity baseline)")
    p.add_argument("--real", help="folder of real images of the target domain (FID/KID/PRDC)")
    p.add_argument("--truth", help="folder of paired ground truth, matched by file name")
    p.add_argument("--labels", action="store_true", help="outputs are label maps: FCN-score protocol")
    p.add_argument("--floor", action="store_true", help="also the real-vs-real FID/KID floor")
    p.add_argument("--inception_weights", metavar="PATH",
                   help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth: adds the Inception Score (is_mean, "
                        "is_std) of the generated images; without it IS is not computed")
    p.add_argument("--range", default="", metavar="LO,HI",
                   help="values of images that are not 8-bit pictures (16-bit, float): lo,hi or lo,hi;lo,hi;… per "
                        "channel, whose hi - lo is the data range of PSNR and SSIM (default: the type's full range; "
                        "with --model, the export's range)")
    p.add_argument("--json", help="write the scores here as JSON")
    return p


def _score(args: argparse.Namespace) -> dict[str, dict]:
    """Column name → scores; --model exports translate --input into a temporary folder first."""
    if (args.model or args.identity) and not args.input:
        raise UserError("--model and --identity need --input, the folder to translate")
    if not (args.generated or args.model or args.identity):
        raise UserError("give --generated, or --model with --input")
    if not (args.real or args.truth or args.inception_weights):
        raise UserError("give --real (FID/KID/PRDC), --truth (paired scores) and/or --inception_weights (IS)")
    if args.inception_weights:
        from cyclegan_tf.evaluation import inception

        try:  # a wrong file stops the run now, not after the translations and FID
            inception.classifier(args.inception_weights)
        except UserError as e:
            raise UserError(f"--inception_weights={e}") from None
    if args.range:
        pixels.parse_range(args.range, args.range.count(";") + 1, "--range")
    with tempfile.TemporaryDirectory() as tmp:
        folders, shown, ranges = {}, {}, {}
        for i, model in enumerate(args.model):
            name = _column(model, folders)
            ranges[name] = (_translate(model, args.input, f"{tmp}/{i}"), f"the range of --model={model}")
            folders[name], shown[name] = f"{tmp}/{i}", f"--input={args.input} translated by {model}"
        for folder in args.generated:
            folders[_column(folder, folders)] = folder
        if args.identity:
            folders["identity"] = args.input
        given = {name: (args.range, "--range") for name in folders} if args.range else _column_ranges(folders, ranges)
        return {name: evaluate(f, args.real, args.truth, args.labels, args.floor, shown_as=shown.get(name),
                               inception_weights=args.inception_weights, value_range=given[name][0],
                               range_flag=given[name][1])
                for name, f in folders.items()}


def _column_ranges(columns: dict[str, str], exports: dict[str, tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Each column's data range and where it comes from, without --range: a model's, its export's; the other
    columns', the exports' range if they share one, so that every PSNR compares (else their type's full range)."""
    shared = {r for r, _ in exports.values()}
    other = next(iter(exports.values())) if len(shared) == 1 and "" not in shared else ("", "--range")
    return {c: exports.get(c, other) for c in columns}


def _translate(model: str, inputs: str, out: str) -> str:
    """Translates `inputs` with an export into `out` (losslessly: PNG where it holds the export's pixels, else
    TIFF); returns the export's output range, the data range its translations are scored with."""
    from cyclegan_tf.deploy.translate import load_model, run

    kind = load_model(model).kinds[1]  # read once more by run(): the price of knowing the format first
    run(model, inputs, out, fmt="png" if kind.png else "tif")
    return "" if kind.rgb else kind.range_text


def _column(path: str, taken: dict) -> str:
    name = Path(path).name or str(path)
    return name if name not in taken else f"{name} ({len(taken)})"


if __name__ == "__main__":
    from cyclegan_tf import console

    console.quiet_tensorflow()  # before TensorFlow loads: its start-up chatter is not for users
    sys.exit(main())
