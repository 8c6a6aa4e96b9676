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
- PSNR and SSIM against a paired ground truth (files matched by name).
- `--labels`: outputs are label maps; each pixel is snapped to the nearest palette colour and scored
  with the paper's FCN-score protocol: per-pixel accuracy, mean per-class accuracy, mean class IoU.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from cyclegan_tf import atomic
from cyclegan_tf.data.imagefiles import BadImage, find_images, open_rgb
from cyclegan_tf.errors import UserError, exit_status

# The scores themselves, here under their old names too (evaluate.fid ...): the training loop uses metrics.
from cyclegan_tf.evaluation.metrics import (  # noqa: F401
    fid,
    inception_score,
    kid,
    label_scores,
    prdc,
    psnr_ssim,
    snap,
)


def load_folder(folder: str | Path, size: tuple[int, int] | None = None) -> tuple[list[str], np.ndarray]:
    """(file stems, uint8 [N, H, W, 3]) of a folder's images, resized to `size` (W, H) if given."""
    files = find_images(folder) if Path(folder).is_dir() else []
    if not files:
        raise UserError(f"{folder}: no images there")
    stems, images = [], []
    for f in files:
        try:
            img = open_rgb(f.read_bytes(), f.name)
        except (BadImage, OSError) as e:
            raise UserError(f"{f}: {e}") from None
        if size is not None and img.size != size:
            img = img.resize(size)
        stems.append(f.stem)
        images.append(np.asarray(img))
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


def evaluate(generated: str | Path, real: str | Path | None = None, truth: str | Path | None = None,
             labels: bool = False, floor: bool = False, palette: np.ndarray | None = None,
             shown_as: str | None = None, inception_weights: str | Path | None = None) -> dict:
    """All scores that the given folders allow (and the Inception Score with `inception_weights`). `shown_as`
    names the generated images in errors (for translations written to a temporary folder)."""
    stems, gen = load_folder(generated)
    scores: dict = {"n": len(stems)}
    if inception_weights and len(gen) < 10:
        raise UserError(f"{shown_as or generated}: the Inception Score needs at least 10 images (one per split), "
                        f"found {len(gen)}")
    if real:
        _, r = load_folder(real, size=(gen.shape[2], gen.shape[1]))
        for folder, images in ((shown_as or generated, gen), (real, r)):
            if len(images) < 2:  # a covariance needs two samples; FID of one image is undefined
                raise UserError(f"{folder}: FID/KID need at least 2 images per set, found {len(images)}")
        if min(len(gen), len(r)) <= PRDC_K:
            _warn_once("prdc", f"precision/recall/density/coverage need more than {PRDC_K} images per set "
                               f"(found {len(gen)} generated, {len(r)} real): left out")
        if min(len(gen), len(r)) < FID_UNBIASED_N:
            _warn_once("fid_n", f"FID is biased upward below {FID_UNBIASED_N} images per set (found {len(gen)} "
                                f"generated, {len(r)} real): compare FIDs only at the same n (--floor helps)")
    if truth:
        t_stems, t_imgs = load_folder(truth, size=(gen.shape[2], gen.shape[1]))
        by_stem = dict(zip(t_stems, t_imgs))
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise UserError(f"{truth}: no ground truth for {missing[0]} (files are matched by name)")
        t = np.stack([by_stem[s] for s in stems])
        if labels:
            from cyclegan_tf.data import shapescapes

            pal = shapescapes.PALETTE if palette is None else palette
            scores |= label_scores(gen, t, pal, shapescapes.CLASSES if palette is None else None)
        else:
            scores |= psnr_ssim(gen, t)
    if real:
        scores |= distribution_scores(gen, r, floor)
    if inception_weights:
        scores |= inception_scores(gen, inception_weights)
    return scores


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
    with tempfile.TemporaryDirectory() as tmp:
        folders, shown = {}, {}
        for i, model in enumerate(args.model):
            from cyclegan_tf.deploy.translate import run

            run(model, args.input, f"{tmp}/{i}", fmt="png")
            name = _column(model, folders)
            folders[name], shown[name] = f"{tmp}/{i}", f"--input={args.input} translated by {model}"
        for folder in args.generated:
            folders[_column(folder, folders)] = folder
        if args.identity:
            folders["identity"] = args.input
        return {name: evaluate(f, args.real, args.truth, args.labels, args.floor, shown_as=shown.get(name),
                               inception_weights=args.inception_weights)
                for name, f in folders.items()}


def _column(path: str, taken: dict) -> str:
    name = Path(path).name or str(path)
    return name if name not in taken else f"{name} ({len(taken)})"


if __name__ == "__main__":
    from cyclegan_tf import console

    console.quiet_tensorflow()  # before TensorFlow loads: its start-up chatter is not for users
    sys.exit(main())
