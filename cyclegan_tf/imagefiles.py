"""Finding, validating and normalising the image files a user points build_data.py at.

Rule: what TensorFlow decodes natively (JPEG, PNG, BMP, GIF) is stored as the file's own bytes, so
nothing is re-encoded; anything else (WebP, TIFF, EXIF-rotated photos, CMYK JPEGs, BMP variants
TensorFlow cannot read) is converted losslessly to PNG. Every stored image decodes to 3-channel uint8.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
NATIVE_FORMATS = {"JPEG": "jpeg", "PNG": "png", "BMP": "bmp", "GIF": "gif"}
_EXIF_ORIENTATION = 0x0112
# Guards PIL against decompression bombs without refusing real high-resolution photos.
Image.MAX_IMAGE_PIXELS = 30_000 * 30_000


@dataclass(frozen=True)
class ImageRecord:
    """One image ready to be stored: `encoded` decodes to `height` × `width` × 3 uint8."""

    file_name: str
    encoded: bytes
    height: int
    width: int
    format: str
    sha256: str


class BadImage(Exception):
    """The file is not a usable image; the message says why in a few words."""


def find_images(folder: str | os.PathLike, recursive: bool = False) -> list[Path]:
    """Image files under `folder` (any letter case of IMAGE_EXTENSIONS), sorted by relative path."""
    root = Path(folder)
    pattern = "**/*" if recursive else "*"
    files = [p for p in root.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        # PIL clips 16-bit to 8-bit on convert("RGB"); scale instead so the picture survives.
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr * (255.0 / peak) + 0.5, 0, 255).astype(np.uint8))
    return img.convert("RGB")


def encode_png(rgb: Image.Image | np.ndarray) -> bytes:
    """Lossless PNG bytes of an RGB image."""
    if isinstance(rgb, np.ndarray):
        rgb = Image.fromarray(rgb)
    buf = io.BytesIO()
    rgb.save(buf, format="PNG", compress_level=3)  # fast: these are converted once, read many times
    return buf.getvalue()


def _tf_decodes(data: bytes, size: tuple[int, int]) -> bool:
    import tensorflow as tf  # imported lazily: the file scan needs no TensorFlow

    try:
        shape = tf.io.decode_image(data, channels=3, expand_animations=False).shape
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        return False
    return (shape[1], shape[0]) == size


def open_rgb(data: bytes, name: str) -> Image.Image:
    """Decodes `data` fully with PIL, applying EXIF rotation; raises BadImage if it cannot."""
    if not data:
        raise BadImage("empty file")
    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # PIL is lazy: load() is what finds truncated files
        return _to_rgb(ImageOps.exif_transpose(img))
    except UnidentifiedImageError:
        raise BadImage("not an image") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise BadImage(f"unreadable ({str(e).splitlines()[0][:80]})") from None


def load_image(path: str | os.PathLike, file_name: str | None = None) -> ImageRecord:
    """Reads and validates one image file; raises BadImage with a short reason."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadImage(f"cannot read ({e.strerror})") from None
    return normalise(data, file_name or path.name)


def normalise(data: bytes, file_name: str) -> ImageRecord:
    """Validates encoded image bytes and decides whether to keep them or convert to PNG."""
    rgb = open_rgb(data, file_name)
    with Image.open(io.BytesIO(data)) as raw:
        fmt = NATIVE_FORMATS.get(raw.format or "")
        rotated = raw.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
        # Adobe CMYK JPEGs are stored inverted; TensorFlow's decoder ignores that, PIL does not.
        cmyk = raw.format == "JPEG" and raw.mode == "CMYK"
    keep = fmt is not None and not rotated and not cmyk and _tf_decodes(data, rgb.size)
    encoded = data if keep else encode_png(rgb)
    return ImageRecord(
        file_name=file_name,
        encoded=encoded,
        height=rgb.height,
        width=rgb.width,
        format=fmt if keep else "png",
        sha256=hashlib.sha256(encoded).hexdigest(),
    )


def split_side_by_side(record: ImageRecord) -> tuple[ImageRecord, ImageRecord]:
    """Splits an aligned A|B image (pix2pix layout) into its left and right halves, as PNG."""
    rgb = np.asarray(open_rgb(record.encoded, record.file_name))
    if rgb.shape[1] % 2:
        raise BadImage(f"width {rgb.shape[1]} is odd: not an A|B pair")
    half = rgb.shape[1] // 2
    out = []
    for part in (rgb[:, :half], rgb[:, half:]):
        png = encode_png(np.ascontiguousarray(part))
        out.append(ImageRecord(record.file_name, png, part.shape[0], part.shape[1], "png",
                               hashlib.sha256(png).hexdigest()))
    return out[0], out[1]
