"""Translating images too large for one call in overlapping tiles, blended with a smooth window.

Instance norm (and batch norm at test, which the official code also computes on the image itself) normalises
each tile by that tile's own statistics: a sky tile and a street tile are shifted differently, so neighbouring
tiles drift apart in colour and seams show even where they are blended. With `norm_stats="global"` every norm
layer instead uses the statistics of the whole image, measured once on a copy downscaled to `stats_size` px on
its long side (the export's `statistics` signature), for every tile (`translate_with_statistics`): each tile
is then normalised as it would be in the whole image, and only the receptive field at its border differs,
which the overlap blends away. `norm_stats="tile"` is plain tiling.

Memory is bounded by the image itself: the input, one float32 accumulator of its size and one of
weights, plus one batch of tiles in the generator; a 6000 × 4000 photo stays within 4 GB
(docs/benchmarks.md).
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import tensorflow as tf
from PIL import Image

from cyclegan_tf.errors import UserError

NORM_STATS = ("global", "tile")


def check(tile: int, overlap: int, norm_stats: str, stats_size: int) -> None:
    """One-line errors for the tiling flags."""
    if tile < 0 or (tile and not 0 <= overlap < tile):
        raise UserError(f"--tile={tile} --overlap={overlap}: need 0 ≤ overlap < tile (0 tile: no tiling)")
    if norm_stats not in NORM_STATS:
        raise UserError(f"--norm_stats={norm_stats}: choose {' or '.join(NORM_STATS)}")
    if stats_size < 16:
        raise UserError(f"--stats_size={stats_size}: at least 16 px")


def positions(n: int, tile: int, overlap: int) -> list[int]:
    """Starts of the tiles along one side of n pixels: every tile - overlap pixels, the last flush with the end."""
    if n <= tile:
        return [0]
    return [*range(0, n - tile, tile - overlap), n - tile]


def window(n: int, overlap: int, first: bool, last: bool) -> np.ndarray:
    """A tile's blending weights along one side: raised-cosine ramps over the overlap, none at the image's
    border; two ramps meeting across an overlap sum to 1, and no weight is 0."""
    w = np.ones(n, np.float32)
    if overlap:
        ramp = (0.5 - 0.5 * np.cos(np.pi * (np.arange(overlap) + 0.5) / overlap)).astype(np.float32)
        if not first:
            w[:overlap] = ramp
        if not last:
            w[-overlap:] = np.minimum(w[-overlap:], ramp[::-1])
    return w


def statistics(model, image: np.ndarray, stats_size: int) -> tf.Tensor:
    """The norm statistics of the whole image, measured on a copy at most `stats_size` px on its long side."""
    if model.statistics is None:
        raise UserError("--norm_stats=global: this export has no 'statistics' signature (written by an older "
                        "version, or in square mode with --image_size); export it again, or use --norm_stats=tile")
    h, w = image.shape[:2]
    scale = min(1.0, stats_size / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if image.dtype == np.uint8 and image.shape[-1] == 3:  # PIL's bicubic, as the images were read
        small = Image.fromarray(image)
        if scale < 1:
            small = small.resize(size, Image.NEAREST if model.nearest else Image.BICUBIC)
        x = tf.constant(np.asarray(small, np.float32)[None])
    else:
        x = tf.constant(image[None].astype(np.float32))
        if scale < 1:
            x = tf.image.resize(x, size[::-1], method="nearest" if model.nearest else "bicubic",
                                antialias=not model.nearest)
    return model.statistics(images=x)["statistics"]


def translate_tiled(model, image: np.ndarray, tile: int, overlap: int, batch_size: int, norm_stats: str = "global",
                    stats_size: int = 1024) -> np.ndarray:
    """[H, W, C'] translation of `image` ([H, W, C]) in tiles of tile × tile px (less where the image is
    smaller), in the output's type. `model` is an inference.Export: `translate(images=)`, `nearest`, `kinds`
    and, for global statistics, `statistics` and `translate_with_statistics`."""
    h, w = image.shape[:2]
    th, tw = min(tile, h), min(tile, w)
    run: Callable[[tf.Tensor], tf.Tensor] = lambda x: model.translate(images=x)["images"]  # noqa: E731
    if norm_stats == "global":
        stats = statistics(model, image, stats_size)
        run = lambda x: model.translate_with_statistics(images=x, statistics=stats)["images"]  # noqa: E731
    kind = model.kinds[1]
    acc = np.zeros((h, w, kind.channels), np.float32)
    weight = np.zeros((h, w, 1), np.float32)
    boxes = [(y, x) for y in positions(h, tile, overlap) for x in positions(w, tile, overlap)]
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i:i + batch_size]
        tiles = np.stack([image[y:y + th, x:x + tw] for y, x in chunk]).astype(np.float32)
        for (y, x), out in zip(chunk, run(tf.constant(tiles)).numpy()):
            wy = window(th, overlap, y == 0, y + th == h)
            wx = window(tw, overlap, x == 0, x + tw == w)
            win = (wy[:, None] * wx[None, :])[..., None]
            acc[y:y + th, x:x + tw] += out * win
            weight[y:y + th, x:x + tw] += win
    np.divide(acc, weight, out=acc)  # in place: the image-sized float buffers are the memory bound
    if kind.dtype == "float32":
        return acc
    np.rint(acc, out=acc)
    np.clip(acc, 0, 255 if kind.dtype == "uint8" else 65535, out=acc)
    return acc.astype(kind.dtype)
