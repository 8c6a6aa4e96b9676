"""Finding, validating and normalising the image files a user points build_data.py at.

Rule: what TensorFlow decodes natively (JPEG, PNG, BMP, GIF) to the same picture as PIL (pixel for
pixel, except JPEG) is stored as the file's own bytes, so nothing is re-encoded; anything else (WebP,
TIFF, EXIF-rotated photos, CMYK JPEGs, palette BMPs and other BMP variants TensorFlow reads wrongly or
not at all) is converted losslessly to PNG. Every stored image decodes to 3-channel uint8.
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


def _broken_link(p: Path) -> bool:
    return p.is_symlink() and not p.exists()


def find_images(folder: str | os.PathLike, recursive: bool = False, *, broken_links: bool = False) -> list[Path]:
    """Image files under `folder` (any letter case of IMAGE_EXTENSIONS), sorted by relative path.

    With `broken_links`, symlinks to nothing are listed too, so that the caller can report them
    (load_image raises BadImage("broken symlink")) instead of losing them without a word.
    """
    root = Path(folder)
    pattern = "**/*" if recursive else "*"
    files = [p for p in root.glob(pattern)
             if p.suffix.lower() in IMAGE_EXTENSIONS and (p.is_file() or (broken_links and _broken_link(p)))]
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


def _tf_decodes_as(data: bytes, rgb: Image.Image, lossless: bool) -> bool:
    """Whether TensorFlow decodes `data` to PIL's picture: pixel for pixel for lossless formats (8-bit
    palette BMPs come out as grey palette indexes), in size for JPEG, whose decoders may differ by a level."""
    import tensorflow as tf  # imported lazily: the file scan needs no TensorFlow

    try:
        decoded = tf.io.decode_image(data, channels=3, expand_animations=False).numpy()
    except tf.errors.OpError:
        return False
    if decoded.shape != (rgb.height, rgb.width, 3):
        return False
    return not lossless or np.array_equal(decoded, np.asarray(rgb))


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
    if _broken_link(path):
        raise BadImage("broken symlink")
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
    keep = fmt is not None and not rotated and not cmyk and _tf_decodes_as(data, rgb, lossless=fmt != "jpeg")
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
