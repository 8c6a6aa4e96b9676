"""Offline image sets made from the real photos and textures that scikit-image ships.

`textures` cuts random crops from them; `colour_map` is a fixed, known X→Y mapping, so a model
trained on (textures, colour_map(other textures)) can be scored against the truth.
"""
from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
from PIL import Image

# Files shipped inside the scikit-image wheel (others in skimage.data are downloaded: not these).
SOURCES = ("astronaut", "chelsea", "coffee", "rocket", "brick", "grass", "gravel", "camera", "coins")


@functools.cache
def _sources() -> tuple[np.ndarray, ...]:
    import skimage.data

    out = []
    for name in SOURCES:
        img = getattr(skimage.data, name)()
        out.append(np.stack([img] * 3, -1) if img.ndim == 2 else img[..., :3])
    return tuple(out)


def textures(n: int, size: int, seed: int = 0) -> np.ndarray:
    """n random crops [n, size, size, 3] uint8 (random source, scale, position and flip)."""
    rng = np.random.default_rng(seed)
    sources = _sources()
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        src = sources[rng.integers(len(sources))]
        side = int(rng.integers(min(size, *src.shape[:2]), min(src.shape[:2]) + 1))  # enlarged if too small
        y, x = (int(rng.integers(0, d - side + 1)) for d in src.shape[:2])
        crop = Image.fromarray(src[y:y + side, x:x + side]).resize((size, size), Image.BICUBIC)
        out[i] = np.asarray(crop)[:, ::-1] if rng.random() < 0.5 else np.asarray(crop)
    return out


# Scenes: label maps (flat palette colours) and the same layouts rendered with tinted textures.
PALETTE = np.array([[30, 30, 160], [220, 50, 40], [240, 220, 60]], np.uint8)  # background, circles, squares
_CLASS_TEXTURES = (("grass", (0.6, 1.0, 0.5)), ("brick", (1.0, 0.55, 0.45)), ("gravel", (0.9, 0.9, 1.0)))


def scenes(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random layouts of 1–3 circles and squares: (label maps, textured renders), both [n, size, size, 3]."""
    import skimage.data

    rng = np.random.default_rng(seed)
    textures_ = [getattr(skimage.data, name)() for name, _ in _CLASS_TEXTURES]
    yy, xx = np.mgrid[0:size, 0:size]
    labels, photos = np.empty((2, n, size, size, 3), np.uint8)
    for i in range(n):
        cls = np.zeros((size, size), np.int64)
        for _ in range(int(rng.integers(1, 4))):
            kind = int(rng.integers(1, 3))
            cy, cx = rng.uniform(0.15, 0.85, 2) * size
            r = rng.uniform(0.12, 0.3) * size
            inside = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r if kind == 1 else (abs(yy - cy) < r) & (abs(xx - cx) < r)
            cls[inside] = kind
        labels[i] = PALETTE[cls]
        render = np.zeros((size, size, 3))
        for k, (tex, (_, tint)) in enumerate(zip(textures_, _CLASS_TEXTURES)):
            scale = int(rng.integers(size, 2 * size))  # texture scale varies between scenes
            y0, x0 = (int(rng.integers(0, d - scale)) for d in tex.shape[:2])
            patch = np.asarray(Image.fromarray(tex[y0:y0 + scale, x0:x0 + scale]).resize((size, size), Image.BILINEAR))
            render[cls == k] = (patch[..., None] * np.array(tint))[cls == k]
        photos[i] = np.clip(render, 0, 255).astype(np.uint8)
    return labels, photos


def colour_map(images: np.ndarray) -> np.ndarray:
    """The known X→Y mapping: swap red and blue, and invert green."""
    out = images[..., ::-1].copy()
    out[..., 1] = 255 - out[..., 1]
    return out


def write_folder(images: np.ndarray, folder: str | Path, fmt: str = "jpg", quality: int = 95) -> list[Path]:
    """Saves images as 000000.<fmt>, ...; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        p = folder / f"{i:06d}.{fmt}"
        Image.fromarray(img).save(p, **({"quality": quality} if fmt in ("jpg", "jpeg", "webp") else {}))
        paths.append(p)
    return paths

