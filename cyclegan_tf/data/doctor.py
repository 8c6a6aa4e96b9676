"""The data doctor: what in a training set will hurt a run, found before it starts.

  python -m cyclegan_tf.doctor horses/ zebras/                # two domains: folders or build_data.py records
  python -m cyclegan_tf.doctor man.tfrecords woman.tfrecords --image_size 128
  python -m cyclegan_tf.doctor horses/ zebras/ --fix_out cleaned/   # a cleaned copy; the inputs are not touched

Each finding is one line naming the file, what is wrong and what to do: images smaller than the crop (upscaled,
blurry; junyanz #194, #376, #390), grey images in a colour domain and colour ones in a grey domain (horse2zebra
has some), alpha channels, unreadable files, near-duplicates within a domain and across the two (a 64-bit
difference hash: the same image in X and Y teaches nothing), and images nearly black, white or flat, or far
from their domain's brightness and contrast. First each domain's counts and a histogram of its short sides.
"""
from __future__ import annotations

import argparse
import io
import os
import shutil
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from cyclegan_tf.data.imagefiles import BadImage, find_images, probe, read_array
from cyclegan_tf.errors import UserError, exit_status

SIDES = ((0, 128), (128, 256), (256, 512), (512, 1024), (1024, None))
GREY_SPREAD = 3  # max |R − G|, |G − B| (levels) of a colour-stored image that is grey


@dataclass
class Look:
    """One image as the doctor sees it."""

    name: str
    width: int = 0
    height: int = 0
    kind: str = ""  # grey, colour, or "<n>-channel <type>"
    grey_as_colour: bool = False
    alpha: bool = False  # an alpha channel with transparent pixels
    mean: float = 0.0
    std: float = 0.0
    dhash: int = 0
    error: str = ""


def _dhash(grey: Image.Image) -> int:
    small = np.asarray(grey.resize((9, 8), Image.Resampling.BILINEAR), np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def look(name: str, data: bytes) -> Look:
    """Size, kind, alpha, brightness, contrast and hash of one image, decoded at a reduced size where the
    format allows (JPEG's draft mode)."""
    seen = Look(name)
    try:
        found = probe(data, name)
        if not found.picture:
            array = read_array(data, name)
            seen.height, seen.width = array.shape[:2]
            seen.kind = f"{array.shape[2]}-channel {array.dtype}"
            first = array[..., 0].astype(np.float64)
            lo, hi = np.percentile(first, (0.5, 99.5))
            scaled = np.clip((first - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)
            seen.dhash = _dhash(Image.fromarray(scaled))
            return seen
        with Image.open(io.BytesIO(data)) as img:
            jpeg = img.format == "JPEG"
            img.draft("RGB" if img.mode not in ("L", "1") else "L", (64, 64))  # JPEG only: decodes at 1/2…1/8
            img = ImageOps.exif_transpose(img)
            seen.width, seen.height = _jpeg_size(data) if jpeg else img.size
            if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
                alpha = np.asarray(img.convert("RGBA"))[..., 3]
                seen.alpha = bool(alpha.min() < 255)
            rgb = np.asarray(img.convert("RGB"), np.int16)
    except BadImage as e:
        seen.error = str(e)
        return seen
    except Exception as e:  # noqa: BLE001 - a damaged file surfaces as many kinds of error
        seen.error = f"cannot be read ({type(e).__name__})"
        return seen
    seen.kind = "grey" if found.channels == 1 else "colour"
    spread = max(np.abs(rgb[..., 0] - rgb[..., 1]).max(), np.abs(rgb[..., 1] - rgb[..., 2]).max())
    seen.grey_as_colour = seen.kind == "colour" and spread <= GREY_SPREAD
    grey = rgb.mean(axis=-1)
    seen.mean, seen.std = float(grey.mean()), float(grey.std())
    seen.dhash = _dhash(Image.fromarray(grey.astype(np.uint8)))
    return seen


def _jpeg_size(data: bytes) -> tuple[int, int]:
    """A JPEG's size upright (EXIF orientation applied), which draft mode hides."""
    with Image.open(io.BytesIO(data)) as original:
        size = original.size
        orientation = original.getexif().get(0x0112, 1)
    return (size[1], size[0]) if orientation in (5, 6, 7, 8) else size


def _look_file(path: str) -> Look:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        return Look(path, error=f"cannot be read ({e.strerror})")
    return look(path, data)


@dataclass
class Domain:
    label: str  # X or Y
    source: str
    looks: list[Look]
    paths: list[Path] | None  # the files, for --fix_out; None for records

    @property
    def good(self) -> list[Look]:
        return [s for s in self.looks if not s.error]


def read_domain(label: str, source: str, workers: int) -> Domain:
    """A folder of images or build_data.py records (their first image of each example)."""
    path = Path(source)
    if path.is_dir():
        files = find_images(path, recursive=True)
        if not files:
            raise UserError(f"{source}: no image files")
        chunk = max(1, len(files) // (workers * 8))
        with ProcessPoolExecutor(workers) as pool:
            looks = list(pool.map(_look_file, map(str, files), chunksize=chunk))
        return Domain(label, source, looks, files)
    from cyclegan_tf.data import records  # TensorFlow loads here, for records only

    try:
        files = records.resolve_files(source)
    except UserError:
        raise UserError(f"{source}: no such folder or TFRecord file") from None
    return Domain(label, source, [look(name, data) for name, data in _record_images(files, source)], None)


def _record_images(files: list[str], source: str):
    import tensorflow as tf

    from cyclegan_tf.data import records

    key = records.PREFIX_A + records.ENCODED
    try:
        for raw in tf.data.TFRecordDataset(files).as_numpy_iterator():
            example = tf.train.Example.FromString(raw)
            feature = example.features.feature
            name = feature[records.PREFIX_A + "file_name"].bytes_list.value
            yield (os.fsdecode(name[0]) if name else "?"), feature[key].bytes_list.value[0]
    except (tf.errors.OpError, IndexError) as e:
        raise UserError(f"{source}: not readable build_data.py records ({type(e).__name__})") from None


def domain_lines(d: Domain, image_size: int) -> list[str]:
    """The domain's summary and its findings about single images."""
    good = d.good
    kinds = Counter(s.kind for s in good)
    colour = kinds["colour"] >= kinds["grey"]
    sides = Counter(next(i for i, (lo, hi) in enumerate(SIDES) if hi is None or min(s.width, s.height) < hi)
                    for s in good)
    histogram = ", ".join(f"{lo}–{hi - 1 if hi else ''}: {sides[i]}" for i, (lo, hi) in enumerate(SIDES) if sides[i])
    out = [f"{d.label}: {d.source}: {len(d.looks)} images ({', '.join(f'{n} {k}' for k, n in kinds.items())}"
           f"{f', {len(d.looks) - len(good)} unreadable' if len(good) < len(d.looks) else ''}); short side: "
           f"{histogram or 'none'}"]
    means, stds = np.array([s.mean for s in good]), np.array([s.std for s in good])
    for s in d.looks:
        out += [f"{s.name}: {problem}" for problem in _problems(s, colour, image_size, means, stds)]
    return out


def _outlier(value: float, values: np.ndarray) -> bool:
    if len(values) < 20:
        return False
    median = np.median(values)
    spread = 1.4826 * np.median(np.abs(values - median)) or 1.0
    return abs(value - median) > 6 * spread


def _problems(s: Look, colour: bool, image_size: int, means: np.ndarray, stds: np.ndarray) -> list[str]:
    if s.error:
        return [f"{s.error}: build_data.py skips it; remove or replace it"]
    found = []
    if image_size and min(s.width, s.height) < image_size:
        found.append(f"{s.width}×{s.height}, smaller than the crop ({image_size} px): upscaled, blurry; drop it or "
                     "train at a smaller --image_size")
    if colour and (s.kind == "grey" or s.grey_as_colour):
        stored = "stored as RGB" if s.grey_as_colour else "one channel"
        found.append(f"grey ({stored}) in a colour domain: it teaches that the target may be grey; drop it")
    if not colour and s.kind == "colour" and not s.grey_as_colour:
        found.append("colour in a grey domain: it is read as grey; drop it if the colour matters")
    if s.alpha:
        found.append("has transparent pixels (alpha), which are dropped: the hidden colours show; flatten it "
                     "onto a background (--fix_out flattens onto white)")
    if s.kind in ("grey", "colour"):
        if s.mean < 8 or s.mean > 247:
            found.append(f"nearly {'black' if s.mean < 8 else 'white'} (mean level {s.mean:.0f}): drop it")
        elif s.std < 3:
            found.append(f"flat (contrast {s.std:.1f} levels): drop it")
        elif _outlier(s.mean, means) or _outlier(s.std, stds):
            found.append(f"far from its domain's brightness/contrast (mean {s.mean:.0f}, contrast {s.std:.0f}; the "
                         f"domain's medians {np.median(means):.0f}, {np.median(stds):.0f}): check it belongs")
    return found


def duplicates(a: Domain, b: Domain | None, bits: int) -> list[tuple[str, str, int]]:
    """(earlier, image, bits apart) for each image whose difference hash is at most `bits` bits from an earlier
    one of `a` (b None), or, across, for each image of `b` from one of `a`: the first such image only."""
    left = [s for s in a.good]
    right = left if b is None else [s for s in b.good]
    if not left or not right:
        return []
    x = np.array([s.dhash for s in left], np.uint64)
    y = np.array([s.dhash for s in right], np.uint64)
    first: dict[int, tuple[int, int]] = {}  # image of `right` → (the first of `left` like it, bits apart)
    for start in range(0, len(x), 1024):
        block = np.bitwise_count(x[start:start + 1024, None] ^ y[None, :])
        for i, j in zip(*np.nonzero(block <= bits)):
            i, j = int(i) + start, int(j)
            if (b is None and j <= i) or j in first:
                continue
            first[j] = (i, int(block[i - start, j]))
    return [(left[i].name, right[j].name, n) for j, (i, n) in sorted(first.items())]


def fix(domains: list[Domain], out: Path, image_size: int, dropped: set[str]) -> int:
    """A cleaned copy under `out`/X, `out`/Y: the dropped files left out, grey and transparent images of a
    colour domain written as RGB (transparency flattened onto white) PNGs; the rest copied as they are."""
    written = 0
    for d in domains:
        if d.paths is None:
            raise UserError(f"--fix_out: {d.source} is records; run the doctor on the image folders they were built "
                            "from")
        colour = Counter(s.kind for s in d.good)["colour"] >= Counter(s.kind for s in d.good)["grey"]
        folder = out / d.label
        if folder.exists() and any(folder.iterdir()):
            raise UserError(f"--fix_out={out}: {folder} exists and is not empty; choose a new folder")
        folder.mkdir(parents=True, exist_ok=True)
        for path, s in zip(d.paths, d.looks):
            if s.error or s.name in dropped or (image_size and min(s.width, s.height) < image_size):
                continue
            target = folder / path.relative_to(d.source)
            target.parent.mkdir(parents=True, exist_ok=True)
            if colour and (s.kind == "grey" or s.alpha):
                with Image.open(path) as img:
                    img = ImageOps.exif_transpose(img).convert("RGBA")
                    flat = Image.alpha_composite(Image.new("RGBA", img.size, "white"), img).convert("RGB")
                    flat.save(target.with_suffix(".png"))
            else:
                shutil.copy2(path, target)
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    from cyclegan_tf import console

    console.quiet_tensorflow()  # records are read with TensorFlow, whose start-up chatter is not for users
    parser = argparse.ArgumentParser(prog="python -m cyclegan_tf.doctor", description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="+", help="one or two domains: image folders or build_data.py records")
    parser.add_argument("--image_size", type=int, default=256, help="the crop train.py will take (default 256)")
    parser.add_argument("--duplicate_bits", type=int, default=4, help="difference hashes at most this many bits "
                        "apart (of 64) are near-duplicates (default 4)")
    parser.add_argument("--fix_out", default="", help="write a cleaned copy of the folders here (unreadable, too "
                        "small and later duplicates left out; grey and transparent images of a colour domain as RGB)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes reading images")
    args = parser.parse_args(argv)
    return exit_status(lambda: run(args))


def run(args: argparse.Namespace) -> None:
    if len(args.data) > 2:
        raise UserError(f"give one or two domains, not {len(args.data)}")
    if not 0 <= args.duplicate_bits <= 64 or args.image_size < 0 or args.workers < 1:
        raise UserError("--duplicate_bits takes 0…64, --image_size at least 0, --workers at least 1")
    domains = [read_domain(label, source, args.workers) for label, source in zip("XY", args.data)]
    lines, dropped = [], set()
    for d in domains:
        lines += domain_lines(d, args.image_size)
    for d in domains:
        for a, b, n in duplicates(d, None, args.duplicate_bits):
            lines.append(f"{b}: looks like {a} ({n} of 64 hash bits differ): a near-duplicate in {d.label}; keep one")
            dropped.add(b)
    if len(domains) == 2:
        for a, b, n in duplicates(domains[0], domains[1], args.duplicate_bits):
            lines.append(f"{b}: looks like {a} of X ({n} of 64 hash bits differ): the same image in X and Y teaches "
                         "the translation nothing; remove it from one domain")
            dropped.add(b)
    findings = len(lines) - len(domains)
    print("\n".join(lines))
    print(f"{findings} finding(s)")
    if args.fix_out:
        written = fix(domains, Path(args.fix_out), args.image_size, dropped)
        print(f"wrote {written} images to {args.fix_out}")


if __name__ == "__main__":
    sys.exit(main())
