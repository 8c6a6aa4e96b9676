"""Finding, validating and normalising the image files a user points build_data.py at.

Rule: what TensorFlow decodes natively (JPEG, PNG, BMP, GIF) to the same picture as PIL (pixel for
pixel, except JPEG) is stored as the file's own bytes, so nothing is re-encoded; anything else (WebP,
TIFF, EXIF-rotated photos, CMYK JPEGs, palette BMPs and other BMP variants TensorFlow reads wrongly or
not at all) is converted losslessly to PNG.

Beyond 8-bit pictures (data/pixels.py): 16-bit PNGs (read with TensorFlow, as PIL reduces 16-bit colour to
8 bits), TIFFs of any type, pages or bands (tifffile, the library microscopy and remote sensing use) and `.npy`
arrays (height × width × channels) are read as arrays. A domain that is not 8-bit RGB is stored as PNG
where PNG holds it losslessly (8 and 16 bits, 1 to 4 channels) and as raw little-endian array bytes
otherwise (float32, more than 4 channels): both decode inside tf.data without Python, which TIFF would not.
"""
from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".npy")
NATIVE_FORMATS = {"JPEG": "jpeg", "PNG": "png", "BMP": "bmp", "GIF": "gif"}
_EXIF_ORIENTATION = 0x0112
# Guards PIL against decompression bombs without refusing real high-resolution photos.
Image.MAX_IMAGE_PIXELS = 30_000 * 30_000


@dataclass(frozen=True)
class ImageRecord:
    """One image ready to be stored: `encoded` decodes to `height` × `width` × `channels` of `dtype` (raw
    array bytes when `format` is "raw"); `clipped` counts its values outside the domain's range."""

    file_name: str
    encoded: bytes
    height: int
    width: int
    format: str
    sha256: str
    channels: int = 3
    dtype: str = "uint8"
    clipped: int = 0


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


# --- any pixels: 16-bit, float, many channels (data/pixels.py) -------------------------------------------

_GREY_MODES = ("1", "L", "LA", "La")
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type → channels
_EXACT_IN_FLOAT32 = 2**24


@dataclass(frozen=True)
class Probe:
    """What a file holds, from its header: `picture` is an 8-bit grey or colour picture, which converts
    between grey and RGB as its domain needs; anything else must match its domain exactly."""

    channels: int
    dtype: str
    picture: bool

    def describe(self) -> str:
        return f"{'grey' if self.channels == 1 else 'colour'} 8-bit picture" if self.picture else \
            f"{self.channels}-channel {self.dtype}"


def _container(data: bytes) -> str:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 25 and data[24] == 16:
        return "png16"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data[:6] == b"\x93NUMPY":
        return "npy"
    return "picture"


def _stored_dtype(dtype: np.dtype) -> str:
    if dtype == np.uint8 or dtype == np.uint16:
        return dtype.name
    if dtype.kind in "biuf":
        return "float32"  # int16 CT, float64, …: float32 holds them (integers up to 2^24 exactly)
    raise BadImage(f"{dtype} values are not pixels")


def _bands_last(arr: np.ndarray, axes: str) -> np.ndarray:
    """A TIFF series as [H, W, C]: samples (S) stay last, pages or planes (C, Q, Z, I…) become bands."""
    keep = [i for i, n in enumerate(arr.shape) if n > 1 or axes[i] in "YX"]
    arr, axes = arr.reshape([arr.shape[i] for i in keep]), "".join(axes[i] for i in keep)
    if arr.ndim == 2:
        return arr[..., None]
    if arr.ndim != 3:
        raise BadImage(f"a {arr.ndim}-D TIFF (axes {axes}), not one image of bands")
    return arr if axes[-1] not in "YX" else np.moveaxis(arr, 0, -1)


def _hwc(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 2:
        return arr[..., None]
    if arr.ndim != 3:
        raise BadImage(f"a {arr.ndim}-D {what}, not height × width × channels")
    return arr


def _unreadable(e: Exception) -> BadImage:
    return BadImage(f"unreadable ({str(e).splitlines()[0][:80] if str(e) else type(e).__name__})")


def probe(data: bytes, name: str) -> Probe:
    """What `data` holds, reading no more than its header where the format allows."""
    if not data:
        raise BadImage("empty file")
    kind = _container(data)
    try:
        if kind == "png16":
            return Probe(_PNG_CHANNELS.get(data[25], 1), "uint16", False)
        if kind == "tiff":
            import tifffile

            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                series = tif.series[0]
                channels, dtype = _tiff_channels(series.shape, series.axes), _stored_dtype(series.dtype)
            return Probe(channels, dtype, dtype == "uint8" and channels in (1, 3))
        if kind == "npy":
            buf = io.BytesIO(data)
            version = np.lib.format.read_magic(buf)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = read(buf)
            return Probe(1 if len(shape) == 2 else shape[-1] if len(shape) == 3 else 0, _stored_dtype(dtype), False)
        with Image.open(io.BytesIO(data)) as img:
            mode = img.mode
    except BadImage:
        raise
    except UnidentifiedImageError:
        raise BadImage("not an image") from None
    except Exception as e:  # noqa: BLE001 - a damaged header surfaces as many kinds of error
        raise _unreadable(e) from None
    if mode.startswith("I;16"):
        return Probe(1, "uint16", False)
    if mode in ("I", "F"):
        return Probe(1, "float32", False)
    return Probe(1 if mode in _GREY_MODES else 3, "uint8", True)


def _tiff_channels(shape: tuple[int, ...], axes: str) -> int:
    dims = [(n, a) for n, a in zip(shape, axes) if n > 1 or a in "YX"]
    if len(dims) == 2:
        return 1
    if len(dims) != 3:
        raise BadImage(f"a {len(dims)}-D TIFF (axes {axes}), not one image of bands")
    return dims[-1][0] if dims[-1][1] not in "YX" else dims[0][0]


def read_array(data: bytes, name: str) -> np.ndarray:
    """[H, W, C] uint8, uint16 or float32 of a file that is not an 8-bit picture (probe(...).picture False);
    BadImage for NaN or infinite values, or integers float32 cannot hold exactly."""
    kind = _container(data)
    try:
        if kind == "png16":
            import tensorflow as tf

            arr = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
        elif kind == "tiff":
            import tifffile

            with tifffile.TiffFile(io.BytesIO(data)) as tif:
                arr = _bands_last(tif.series[0].asarray(), tif.series[0].axes)
        elif kind == "npy":
            arr = _hwc(np.load(io.BytesIO(data), allow_pickle=False), "array")
        else:
            with Image.open(io.BytesIO(data)) as img:
                arr = _hwc(np.asarray(ImageOps.exif_transpose(img)), "image")
    except BadImage:
        raise
    except Exception as e:  # noqa: BLE001 - truncated or damaged files surface as many kinds of error
        raise _unreadable(e) from None
    return _checked(arr)


def _checked(arr: np.ndarray) -> np.ndarray:
    stored = _stored_dtype(arr.dtype)
    if stored != "float32":
        return np.ascontiguousarray(arr)
    if arr.dtype.kind in "iu" and arr.size and max(abs(int(arr.min())), abs(int(arr.max()))) > _EXACT_IN_FLOAT32:
        raise BadImage(f"{arr.dtype} values beyond ±2^24, which float32 cannot hold exactly")
    out = np.ascontiguousarray(arr, np.float32)
    if not np.isfinite(out).all():
        raise BadImage(f"{np.count_nonzero(~np.isfinite(out))} NaN or infinite values")
    return out


def load_pixels(data: bytes, name: str, channels: int, dtype: str) -> np.ndarray:
    """[H, W, channels] of `dtype`: a picture converted to grey or RGB as asked, anything else as stored;
    BadImage if it is not of that kind."""
    p = probe(data, name)
    if p.picture and dtype == "uint8" and channels in (1, 3):
        img = open_rgb(data, name) if channels == 3 else _open_grey(data)
        return _hwc(np.asarray(img), "image")
    arr = read_array(data, name)
    if arr.shape[-1] != channels or arr.dtype.name != dtype:
        raise BadImage(f"{arr.shape[-1]}-channel {arr.dtype.name}, not {channels}-channel {dtype} as the rest")
    return arr


def _open_grey(data: bytes) -> Image.Image:
    # through RGB: 16-bit grey is scaled, not clipped, and equal R, G, B give back the same grey exactly
    return open_rgb(data, "").convert("L")


def encode_array(arr: np.ndarray) -> tuple[bytes, str]:
    """(bytes, format) of an array as a record stores it: PNG where PNG holds it losslessly, else raw
    little-endian bytes."""
    if arr.dtype in (np.uint8, np.uint16) and arr.shape[-1] <= 4:
        import tensorflow as tf

        return tf.io.encode_png(arr, compression=3).numpy(), "png"
    return np.ascontiguousarray(arr, arr.dtype.newbyteorder("<")).tobytes(), "raw"


def array_record(arr: np.ndarray, file_name: str, clipped: int = 0) -> ImageRecord:
    encoded, fmt = encode_array(arr)
    return ImageRecord(file_name, encoded, arr.shape[0], arr.shape[1], fmt, hashlib.sha256(encoded).hexdigest(),
                       arr.shape[-1], arr.dtype.name, clipped)


def grey_record(data: bytes, file_name: str) -> ImageRecord:
    """A 1-channel 8-bit record: the file's own bytes where TensorFlow decodes them to PIL's grey picture
    (JPEG and PNG), else a grey PNG."""
    grey = np.asarray(_open_grey(data))
    with Image.open(io.BytesIO(data)) as raw:
        fmt = {"JPEG": "jpeg", "PNG": "png"}.get(raw.format or "")
        plain = raw.getexif().get(_EXIF_ORIENTATION, 1) in (1, None) and raw.mode != "CMYK"
    if fmt and plain:
        import tensorflow as tf

        try:
            decoded = tf.io.decode_image(data, channels=1, expand_animations=False).numpy()[..., 0]
            same = decoded.shape == grey.shape and (fmt == "jpeg" or np.array_equal(decoded, grey))
        except tf.errors.OpError:
            same = False
        if same:
            return ImageRecord(file_name, data, grey.shape[0], grey.shape[1], fmt, hashlib.sha256(data).hexdigest(),
                               1, "uint8")
    return array_record(grey[..., None], file_name)


def write_array(arr: np.ndarray, path: Path, ext: str | None = None) -> None:
    """Writes [H, W, C] pixels to `path` in the format `ext` (default: its extension) names (.png: 8/16-bit,
    1 to 4 channels; .tif/.tiff: any; .npy: any; .jpg/.webp: 8-bit grey or RGB); the caller has checked `fits`."""
    ext = (ext or path.suffix).lower()
    if ext in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(path, arr if arr.shape[-1] > 1 else arr[..., 0],
                         photometric="rgb" if arr.shape[-1] == 3 and arr.dtype == np.uint8 else "minisblack",
                         planarconfig="contig", compression="zlib" if arr.dtype != np.float32 else None)
    elif ext == ".npy":
        with open(path, "wb") as f:  # a file object: np.save would add .npy to a temporary name
            np.save(f, arr, allow_pickle=False)
    elif ext == ".png" and arr.dtype == np.uint16:
        import tensorflow as tf

        path.write_bytes(tf.io.encode_png(arr).numpy())
    else:
        fmt = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}[ext]
        Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr).save(path, format=fmt, quality=95)


def fits(ext: str, channels: int, dtype: str) -> str | None:
    """Why a file of extension `ext` cannot hold such pixels, or None if it can."""
    ext = ext.lower()
    if ext in (".tif", ".tiff", ".npy"):
        return None
    if ext == ".png":
        return None if dtype in ("uint8", "uint16") and channels <= 4 else \
            f"PNG holds 8- and 16-bit images of 1 to 4 channels, not {channels}-channel {dtype} (use .tif or .npy)"
    if ext in (".jpg", ".jpeg", ".webp"):
        return None if dtype == "uint8" and channels in (1, 3) else \
            f"{ext[1:].upper()} holds 8-bit grey or RGB, not {channels}-channel {dtype} (use .png, .tif or .npy)"
    return f"{ext or 'no extension'}: use .png, .jpg, .webp, .tif or .npy"
