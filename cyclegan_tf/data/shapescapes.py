"""ShapeScapes: the embedded, offline labels ↔ photo dataset (the analogue of Cityscapes in the paper).

Domain X (A) = label maps: a background and 1–4 circles, squares and triangles in a fixed palette.
Domain Y (B) = the same kind of scene rendered as a "photo": each class filled with a real texture
shipped by scikit-image, tinted, lit by a smooth gradient, slightly blurred and noisy.
The training sets come from independent random streams (unpaired), or with `paired` render each
label map both ways (trainA/i.png ↔ trainB/i.png, for pix2pix). The test split is always paired
(testA/i.png ↔ testB/i.png) and depends on the seed alone, so paired and unpaired models trained
with one seed are scored on the same scenes. With `bands=4` the photos are 16-bit 4-band TIFFs, as a
multispectral camera's: the RGB render ×257 and a near-infrared band, each class with its own reflectance
(grass bright, as vegetation is in the near infrared), under the same light.

  python -m cyclegan_tf.data.shapescapes --out data/shapescapes --size 64 --train 300 --test 50 [--paired] [--bands 4]
"""
from __future__ import annotations

import argparse
import functools
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ("background", "circle", "square", "triangle")
PALETTE = np.array([[40, 40, 160], [220, 50, 40], [240, 220, 60], [60, 200, 220]], np.uint8)
# (scikit-image texture, RGB tint) per class; these ship inside the wheel (no download)
_LOOK = (("grass", (0.55, 1.0, 0.45)), ("brick", (1.0, 0.55, 0.45)), ("gravel", (0.85, 0.85, 1.0)),
         ("chelsea", (1.0, 1.0, 1.0)))
_NEAR_INFRARED = (0.75, 0.35, 0.25, 0.5)  # reflectance of each class's material (grass, brick, gravel, fur)


@functools.cache
def _textures() -> tuple[np.ndarray, ...]:
    import skimage.data

    out = []
    for name, _ in _LOOK:
        t = getattr(skimage.data, name)().astype(np.float32)
        out.append(t if t.ndim == 3 else t[..., None])
    return tuple(out)


def layout(rng: np.random.Generator, size: int) -> np.ndarray:
    """A class map [size, size] (int): background with 1–4 shapes, later ones on top."""
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(rng.integers(1, 5))):
        cls = int(rng.integers(1, len(CLASSES)))
        cx, cy = rng.uniform(0.15, 0.85, 2) * size
        r = rng.uniform(0.1, 0.28) * size
        if cls == 1:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=cls)
        elif cls == 2:
            draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=cls)
        else:
            a = rng.uniform(0, 2 * np.pi)
            draw.polygon([(cx + r * np.cos(a + k * 2 * np.pi / 3), cy + r * np.sin(a + k * 2 * np.pi / 3))
                          for k in range(3)], fill=cls)
    return np.asarray(canvas).astype(np.int64)


def labels(classes: np.ndarray) -> np.ndarray:
    return PALETTE[classes]


def render(classes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The photo of a class map: textured, tinted, lit, blurred, noisy; uint8 [H, W, 3]."""
    size = classes.shape[0]
    photo = np.zeros((size, size, 3), np.float32)
    for k, (tex, (_, tint)) in enumerate(zip(_textures(), _LOOK)):
        side = int(rng.integers(size, min(4 * size, min(tex.shape[:2])) + 1))  # texture scale varies
        y0, x0 = (int(rng.integers(0, d - side + 1)) for d in tex.shape[:2])
        patch = Image.fromarray(tex[y0:y0 + side, x0:x0 + side].squeeze().astype(np.uint8))
        patch = np.asarray(patch.resize((size, size), Image.BILINEAR), np.float32).reshape(size, size, -1)
        photo[classes == k] = (patch * np.array(tint, np.float32))[classes == k]
    yy, xx = np.mgrid[0:size, 0:size] / size
    angle = rng.uniform(0, 2 * np.pi)
    light = 0.8 + 0.35 * (np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)) * 2  # a soft sun
    photo = Image.fromarray(np.clip(photo * light[..., None], 0, 255).astype(np.uint8))
    photo = np.asarray(photo.filter(ImageFilter.GaussianBlur(0.6)), np.float32)
    return np.clip(photo + rng.normal(0, 4, photo.shape), 0, 255).astype(np.uint8)


def with_near_infrared(classes: np.ndarray, photo: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A photo as a 16-bit 4-band image: R, G, B ×257 and a near-infrared band from each class's reflectance,
    textured by the photo's brightness; uint16 [H, W, 4]."""
    brightness = photo.astype(np.float32).mean(-1) / 255.0
    nir = np.asarray(_NEAR_INFRARED, np.float32)[classes] * (0.6 + 0.4 * brightness) * 65535.0
    nir = np.clip(nir + rng.normal(0, 600, nir.shape), 0, 65535)
    return np.concatenate([photo.astype(np.uint16) * 257, nir.astype(np.uint16)[..., None]], -1)


def _save_photo(classes: np.ndarray, rng: np.random.Generator, path: Path, bands: int) -> None:
    photo = render(classes, rng)
    if bands == 3:
        Image.fromarray(photo).save(path.with_suffix(".png"))
        return
    import tifffile

    tifffile.imwrite(path.with_suffix(".tif"), with_near_infrared(classes, photo, rng), photometric="minisblack",
                     planarconfig="contig", compression="zlib")


def _pairs(out: Path, split: str, rng: np.random.Generator, n: int, size: int, bands: int = 3) -> None:
    for folder in (f"{split}A", f"{split}B"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        cls = layout(rng, size)
        Image.fromarray(labels(cls)).save(out / f"{split}A" / f"{i:05d}.png")
        _save_photo(cls, rng, out / f"{split}B" / f"{i:05d}", bands)


def generate(out: str | Path, size: int = 64, train: int = 300, test: int = 50, seed: int = 0,
             paired: bool = False, bands: int = 3) -> dict[str, int]:
    """Writes trainA/ (labels) and trainB/ (photos: 8-bit RGB PNGs, or with `bands` 4 16-bit 4-band TIFFs),
    unpaired or `paired`, and paired testA/ testB/."""
    if bands not in (3, 4):
        raise ValueError(f"bands {bands}: 3 (RGB) or 4 (RGB and near infrared)")
    out = Path(out)
    streams = np.random.default_rng(seed).spawn(3)  # labels, photos, test: independent
    if paired:
        _pairs(out, "train", streams[0], train, size, bands)
    for folder, rng, kind in () if paired else (("trainA", streams[0], "labels"), ("trainB", streams[1], "photo")):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for i in range(train):
            cls = layout(rng, size)
            if kind == "labels":
                Image.fromarray(labels(cls)).save(out / folder / f"{i:05d}.png")
            else:
                _save_photo(cls, rng, out / folder / f"{i:05d}", bands)
    _pairs(out, "test", streams[2], test, size, bands)
    return {"trainA": train, "trainB": train, "testA": test, "testB": test}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m cyclegan_tf.data.shapescapes", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--train", type=int, default=300, help="images per training domain")
    p.add_argument("--test", type=int, default=50, help="paired test scenes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--paired", action="store_true", help="training pairs (pix2pix) instead of unpaired domains")
    p.add_argument("--bands", type=int, default=3, choices=(3, 4),
                   help="photos as 8-bit RGB (3) or 16-bit RGB + near infrared TIFFs (4)")
    args = p.parse_args(argv)
    counts = generate(args.out, args.size, args.train, args.test, args.seed, args.paired, args.bands)
    kind = "paired" if args.paired else "unpaired"
    print(f"ShapeScapes {args.size}×{args.size} ({kind}) in {args.out}: "
          + ", ".join(f"{k} {v}" for k, v in counts.items()))


if __name__ == "__main__":
    main()
