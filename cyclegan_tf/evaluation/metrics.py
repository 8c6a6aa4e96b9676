"""The scores, on Inception features or pixels, free of any file or command-line handling: FID, KID,
precision/recall/density/coverage, the Inception Score, PSNR/SSIM, errors in the data's units (any pixels:
data/pixels.py) and the FCN-score protocol on label maps. score.py (the command) and during_training.py
(evaluation during training) both score with these.
"""
from __future__ import annotations

import numpy as np

from cyclegan_tf.data.pixels import Kind

BAND_METRICS = ("mae", "rmse", "psnr", "ssim")
SSIM_MIN_SIDE = 11  # the Gaussian window of Wang et al. (σ = 1.5, 11 × 11): smaller images have no SSIM


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


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) of `fake` against `real` features [N, D]:
    the share of fakes inside some real k-NN ball, of reals inside some fake k-NN ball, the mean number of real
    balls holding a fake over k, and the share of real balls holding their nearest fake. The balls are open (a
    point at exactly the radius is outside), as in the authors' `prdc` package, which this equals (docs/decisions.md
    says why it is not a dependency)."""
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if k < 1:
        raise ValueError(f"precision/recall/density/coverage need k >= 1, got {k}")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"precision/recall/density/coverage need more than k={k} feature vectors per set, "
                         f"got {len(real)} real and {len(fake)} generated")
    real_radii, fake_radii = _knn_radius(real, k), _knn_radius(fake, k)
    d = _distances(real, fake)  # [real, fake]
    inside_real = d < real_radii[:, None]
    return {"precision": float(inside_real.any(0).mean()),
            "recall": float((d < fake_radii[None, :]).any(1).mean()),
            "density": float(inside_real.sum(0).mean() / k),
            "coverage": float((d.min(1) < real_radii).mean())}


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances [len(a), len(b)] through one matrix product, as scikit-learn's: no [N, M, D] array."""
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.clip(sq, 0, None))


def _knn_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Each point's distance to its k-th nearest other point."""
    d = _distances(x, x)
    np.fill_diagonal(d, 0)  # itself, exactly: always the first of the sorted row, so the k-th other is at k
    return np.partition(d, k, axis=1)[:, k]


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """Inception Score (Salimans et al. 2016): exp(E_x KL(p(y|x) ‖ p(y))) in each of `splits` consecutive
    parts, p = softmax over all the logits' classes (1008 for the 2015 Inception) and p(y) the part's mean;
    (mean, population std) over the parts, as openai/improved-gan's inception_score does. torch-fidelity
    computes the same but shuffles the images first (seed 2020), so its parts, and its std, differ."""
    from scipy.special import log_softmax

    logits = np.asarray(logits, np.float64)
    if logits.ndim != 2:
        raise ValueError(f"expected logits [N, classes], got shape {logits.shape}")
    if splits < 1 or len(logits) < splits:
        raise ValueError(f"the Inception Score needs at least {max(splits, 1)} images (one per split), "
                         f"got {len(logits)}")
    log_p = log_softmax(logits, axis=1)
    n, scores = len(logits), []
    for i in range(splits):
        part = log_p[i * n // splits:(i + 1) * n // splits]
        p = np.exp(part)
        with np.errstate(divide="ignore", invalid="ignore"):  # a class no image gives any mass: 0·(−inf) is 0
            kl = np.where(p > 0, p * (part - np.log(p.mean(0))), 0.0).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def psnr_ssim(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    import tensorflow as tf

    p, t = tf.constant(pred), tf.constant(truth)
    return {"psnr": float(tf.reduce_mean(tf.image.psnr(p, t, 255))),
            "ssim": float(tf.reduce_mean(tf.image.ssim(p, t, 255)))}


def inception_view(kind: Kind, domain: str) -> tuple[bool, str]:
    """Whether Inception's scores (FID, KID, PRDC, IS) can see `domain`'s images, and a note for the reader.

    They are defined on 8-bit photos: 3-channel uint8 images are given as they are, 1-channel uint8 (grey)
    ones with the channel replicated to RGB (noted, as grey FIDs are not comparable with colour ones); for
    anything else (16-bit, float, other channel counts) Inception's numbers would mean nothing: not computed."""
    if kind.dtype == "uint8" and kind.channels == 3:
        return True, ""
    if kind.dtype == "uint8" and kind.channels == 1:
        return True, f"FID/KID on {domain}'s grey images with the channel replicated to RGB (grey replicated)"
    return False, f"FID/KID/IS need RGB photos; {domain} is {kind.channels}-channel {kind.dtype}: not computed"


def as_photos(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] for Inception of 8-bit images of 1 or 3 channels (inception_view said yes); floats in
    the data's units are rounded as an export would store them."""
    if images.dtype != np.uint8:
        images = np.clip(np.round(images), 0, 255).astype(np.uint8)
    return np.repeat(images, 3, axis=-1) if images.shape[-1] == 1 else images


def band_errors(pred: np.ndarray, truth: np.ndarray, lo: tuple[float, ...], hi: tuple[float, ...],
                ssim: bool = True) -> dict[str, list[float]]:
    """Per band (channel), in the data's units with its range hi − lo as the data range: MAE and RMSE over
    every pixel, PSNR and SSIM per image then averaged over the images (as tf.image.psnr/ssim are for
    RGB). `lo`, `hi`: one value or one per channel. SSIM is Wang et al.'s (Gaussian 11 × 11 window, σ = 1.5,
    as tf.image.ssim), NaN for images smaller than its window."""
    if np.shape(pred) != np.shape(truth) or np.ndim(pred) != 4:
        raise ValueError(f"expected two arrays [N, H, W, C] of one shape, got {np.shape(pred)} and {np.shape(truth)}")
    n, h, w, c = pred.shape
    span = np.broadcast_to(np.asarray(hi, np.float64) - np.asarray(lo, np.float64), (c,))
    abs_sum, sq_sum, psnr = np.zeros(c), np.zeros(c), []
    for p, t in zip(pred, truth):  # an image at a time: float64 copies of a whole set of many bands take gigabytes
        err = np.asarray(p, np.float64) - t
        sq = (err ** 2).sum(axis=(0, 1))
        abs_sum, sq_sum = abs_sum + np.abs(err).sum(axis=(0, 1)), sq_sum + sq
        with np.errstate(divide="ignore"):  # a perfect image: infinite PSNR, as tf.image.psnr gives
            psnr.append(10 * np.log10(span ** 2 / (sq / (h * w))))
    out = {"mae": (abs_sum / (n * h * w)).tolist(), "rmse": np.sqrt(sq_sum / (n * h * w)).tolist(),
           "psnr": np.mean(psnr, axis=0).tolist()}
    if ssim:
        out["ssim"] = [_ssim(pred[..., i], truth[..., i], float(span[i])) for i in range(c)]
    return out


def _ssim(pred: np.ndarray, truth: np.ndarray, data_range: float) -> float:
    """Mean SSIM of one band's images [N, H, W]."""
    if min(pred.shape[1:]) < SSIM_MIN_SIDE:
        return float("nan")
    from skimage.metrics import structural_similarity

    return float(np.mean([structural_similarity(np.asarray(a, np.float64), np.asarray(b, np.float64),
                                                data_range=data_range, gaussian_weights=True, sigma=1.5,
                                                use_sample_covariance=False) for a, b in zip(pred, truth)]))


def mean_over_bands(bands: dict[str, list[float]]) -> dict[str, float]:
    """Each metric's mean over the bands: the one number a domain of many channels is ranked by."""
    return {k: float(np.mean(v)) for k, v in bands.items()}


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
