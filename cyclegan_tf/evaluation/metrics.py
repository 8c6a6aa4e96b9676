"""The scores, on Inception features or pixels, free of any file or command-line handling: FID, KID,
precision/recall/density/coverage, the Inception Score, PSNR/SSIM and the FCN-score protocol on label maps.
score.py (the command) and during_training.py (evaluation during training) both score with these.
"""
from __future__ import annotations

import numpy as np


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
