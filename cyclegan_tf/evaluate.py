"""Scoring translations: FID/KID against real images, and ground-truth scores where pairs exist.

  python -m cyclegan_tf.evaluate --generated out/ --real data/shapescapes/testB [--truth data/shapescapes/testB]
  python -m cyclegan_tf.evaluate --model pretrained/photo2labels --input data/shapescapes/testB \
      --truth data/shapescapes/testA --labels
  python -m cyclegan_tf.evaluate --model pretrained/photo2labels --model pretrained/pix2pix_photo2labels \
      --identity --input data/shapescapes/testB --truth data/shapescapes/testA --labels   # side by side

- FID and KID use the standard FID InceptionV3 pool3 features (cyclegan_tf.fid_inception). FID is
  biased upward for small n, so n is reported, and `--floor` adds the real-vs-real score of two
  halves of the real set: the best any model can get at that n.
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
from cyclegan_tf.errors import UserError, disk_error
from cyclegan_tf.imagefiles import BadImage, find_images, open_rgb


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


def fid(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets [N, D]."""
    if min(len(a), len(b)) < 2:
        raise ValueError(f"FID needs at least 2 feature vectors per set, got {len(a)} and {len(b)}")
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    if not (np.isfinite(s1).all() and np.isfinite(s2).all()):
        return float("nan")
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * _trace_sqrt_product(a, s1, s2))


def _trace_sqrt_product(a: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> float:
    """tr √(s1·s2), the term pytorch-fid takes from scipy's sqrtm of the D×D product: Σ √λ over the product's
    eigenvalues, which are real and ≥ 0 (both are covariances) and equal those of a symmetric matrix: C s2 Cᵀ
    (N×N, C the centred features) when N ≤ D, else R s2 R with R = √s1. Symmetric eigensolvers are several
    times faster than sqrtm at D = 2048 and cannot fail to converge on a near-singular product."""
    n, d = a.shape
    if n <= d:
        c = (a - a.mean(0)) / np.sqrt(n - 1)
        m = c @ s2 @ c.T
    else:
        w, v = np.linalg.eigh(s1)
        r = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        m = r @ s2 @ r
    eigenvalues = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def kid(a: np.ndarray, b: np.ndarray, subsets: int = 50, subset_size: int = 100, seed: int = 0) -> float:
    """Kernel Inception Distance: unbiased MMD² with kernel (x·y/d + 1)³, mean over random subsets."""
    rng = np.random.default_rng(seed)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ValueError(f"KID needs at least 2 feature vectors per set, got {len(a)} and {len(b)}")
    d = a.shape[1]
    total = 0.0
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        total += ((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())
    return float(total / subsets)


def psnr_ssim(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    import tensorflow as tf

    p, t = tf.constant(pred), tf.constant(truth)
    return {"psnr": float(tf.reduce_mean(tf.image.psnr(p, t, 255))),
            "ssim": float(tf.reduce_mean(tf.image.ssim(p, t, 255)))}


def snap(images: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """Class index of the nearest palette colour for every pixel."""
    d = ((images[..., None, :].astype(np.int32) - palette.astype(np.int32)) ** 2).sum(-1)
    return d.argmin(-1)


def label_scores(pred: np.ndarray, truth: np.ndarray, palette: np.ndarray,
                 names: tuple[str, ...] | None = None) -> dict:
    """The paper's FCN-score metrics on label maps (RGB, snapped to `palette`)."""
    p, t = snap(pred, palette).ravel(), snap(truth, palette).ravel()
    k = len(palette)
    confusion = np.bincount(t * k + p, minlength=k * k).reshape(k, k)  # rows: truth
    present = confusion.sum(1) > 0
    class_acc = np.diag(confusion) / np.maximum(confusion.sum(1), 1)
    iou = np.diag(confusion) / np.maximum(confusion.sum(0) + confusion.sum(1) - np.diag(confusion), 1)
    names = names or tuple(str(i) for i in range(k))
    return {"pixel_accuracy": float(np.diag(confusion).sum() / confusion.sum()),
            "class_accuracy": float(class_acc[present].mean()), "class_iou": float(iou[present].mean()),
            "per_class_iou": {n: float(v) for n, v, ok in zip(names, iou, present) if ok}}


def distribution_scores(generated: np.ndarray, real: np.ndarray, floor: bool = False) -> dict:
    from cyclegan_tf import fid_inception

    fg, fr = fid_inception.features(generated), fid_inception.features(real)
    out = {"n_generated": len(fg), "n_real": len(fr), "fid": fid(fg, fr), "kid": kid(fg, fr)}
    if floor and len(fr) >= 4:
        half = len(fr) // 2
        out |= {"fid_real_floor": fid(fr[:half], fr[half:2 * half]), "kid_real_floor": kid(fr[:half], fr[half:])}
    return out


def evaluate(generated: str | Path, real: str | Path | None = None, truth: str | Path | None = None,
             labels: bool = False, floor: bool = False, palette: np.ndarray | None = None,
             shown_as: str | None = None) -> dict:
    """All scores that the given folders allow. `shown_as` names the generated images in errors (for
    translations written to a temporary folder)."""
    stems, gen = load_folder(generated)
    scores: dict = {"n": len(stems)}
    if real:
        _, r = load_folder(real, size=(gen.shape[2], gen.shape[1]))
        for folder, images in ((shown_as or generated, gen), (real, r)):
            if len(images) < 2:  # a covariance needs two samples; FID of one image is undefined
                raise UserError(f"{folder}: FID/KID need at least 2 images per set, found {len(images)}")
    if truth:
        t_stems, t_imgs = load_folder(truth, size=(gen.shape[2], gen.shape[1]))
        by_stem = dict(zip(t_stems, t_imgs))
        missing = [s for s in stems if s not in by_stem]
        if missing:
            raise UserError(f"{truth}: no ground truth for {missing[0]} (files are matched by name)")
        t = np.stack([by_stem[s] for s in stems])
        if labels:
            from cyclegan_tf.datasets import shapescapes

            pal = shapescapes.PALETTE if palette is None else palette
            scores |= label_scores(gen, t, pal, shapescapes.CLASSES if palette is None else None)
        else:
            scores |= psnr_ssim(gen, t)
    if real:
        scores |= distribution_scores(gen, r, floor)
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
    try:
        _report(_score(args), args.json)
    except UserError as e:
        return _fail(f"error: {e}", 2)
    except KeyboardInterrupt:
        return _fail("interrupted: nothing half-written was left under a final name", 130)
    except OSError as e:
        if disk_error(e) is None:
            raise
        return _fail(f"error: {disk_error(e)}", 1)
    return 0


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


def _fail(line: str, status: int) -> int:
    print(line, file=sys.stderr, flush=True)
    return status


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--generated", action="append", default=[],
                   help="folder of translated images (repeat to compare several side by side)")
    p.add_argument("--model", action="append", default=[],
                   help="exported model: translate --input first (repeat to compare, e.g. CycleGAN and pix2pix)")
    p.add_argument("--input", help="with --model: the folder to translate")
    p.add_argument("--identity", action="store_true", help="also score --input itself (the identity baseline)")
    p.add_argument("--real", help="folder of real images of the target domain (FID/KID)")
    p.add_argument("--truth", help="folder of paired ground truth, matched by file name")
    p.add_argument("--labels", action="store_true", help="outputs are label maps: FCN-score protocol")
    p.add_argument("--floor", action="store_true", help="also the real-vs-real FID/KID floor")
    p.add_argument("--json", help="write the scores here as JSON")
    return p


def _score(args: argparse.Namespace) -> dict[str, dict]:
    """Column name → scores; --model exports translate --input into a temporary folder first."""
    if (args.model or args.identity) and not args.input:
        raise UserError("--model and --identity need --input, the folder to translate")
    if not (args.generated or args.model or args.identity):
        raise UserError("give --generated, or --model with --input")
    if not (args.real or args.truth):
        raise UserError("give --real (FID/KID) and/or --truth (paired scores)")
    with tempfile.TemporaryDirectory() as tmp:
        folders, shown = {}, {}
        for i, model in enumerate(args.model):
            from cyclegan_tf.inference import run

            run(model, args.input, f"{tmp}/{i}", fmt="png")
            name = _column(model, folders)
            folders[name], shown[name] = f"{tmp}/{i}", f"--input={args.input} translated by {model}"
        for folder in args.generated:
            folders[_column(folder, folders)] = folder
        if args.identity:
            folders["identity"] = args.input
        return {name: evaluate(f, args.real, args.truth, args.labels, args.floor, shown_as=shown.get(name))
                for name, f in folders.items()}


def _column(path: str, taken: dict) -> str:
    name = Path(path).name or str(path)
    return name if name not in taken else f"{name} ({len(taken)})"


if __name__ == "__main__":
    from cyclegan_tf import console

    console.quiet_tensorflow()  # before TensorFlow loads: its start-up chatter is not for users
    sys.exit(main())
