"""The data doctor: what in a training set will hurt a run, found before it starts.

  python -m cyclegan_tf.doctor horses/ zebras/                # two domains: folders or build_data.py records
  python -m cyclegan_tf.doctor man.tfrecords woman.tfrecords --image_size 128
  python -m cyclegan_tf.doctor horses/ zebras/ --fix_out cleaned/   # a cleaned copy; the inputs are not touched
  python -m cyclegan_tf.doctor --paired facades/train            # pix2pix: A|B images, two folders, or records

Each finding is one line naming the file, what is wrong and what to do: images smaller than the crop (upscaled,
blurry; junyanz #194, #376, #390), grey images in a colour domain and colour ones in a grey domain (horse2zebra
has some), alpha channels, unreadable files, near-duplicates within a domain and across the two (a 64-bit
difference hash: the same image in X and Y teaches nothing), and images nearly black, white or flat, or far
from their domain's brightness and contrast. First each domain's counts and a histogram of its short sides.
With --paired, each pair's halves: how much of each other's colours their regions explain (the correlation
ratio of multimodal registration), where they are and moved by up to an eighth of the side, finds halves
shifted against each other and halves of different scenes.
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
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageOps

from cyclegan_tf.data.imagefiles import BadImage, find_images, probe, read_array
from cyclegan_tf.errors import UserError, exit_status

if TYPE_CHECKING:
    from cyclegan_tf.data.records import Survey

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
            seen.dhash = _dhash(Image.fromarray(_levels(array[..., 0])))
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
    except Exception as e:  # noqa: BLE001 - a damaged file surfaces as many kinds of error
        seen.error = _unreadable(e)
        return seen
    seen.kind = "grey" if found.channels == 1 else "colour"
    spread = max(np.abs(rgb[..., 0] - rgb[..., 1]).max(), np.abs(rgb[..., 1] - rgb[..., 2]).max())
    seen.grey_as_colour = seen.kind == "colour" and spread <= GREY_SPREAD
    grey = rgb.mean(axis=-1)
    seen.mean, seen.std = float(grey.mean()), float(grey.std())
    seen.dhash = _dhash(Image.fromarray(grey.astype(np.uint8)))
    return seen


def _levels(band: np.ndarray) -> np.ndarray:
    """A band of any type as 8-bit levels between its 0.5th and 99.5th percentiles."""
    band = band.astype(np.float64)
    lo, hi = np.percentile(band, (0.5, 99.5))
    return np.clip((band - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)


def _unreadable(e: Exception) -> str:
    return str(e) if isinstance(e, BadImage) else f"cannot be read ({type(e).__name__})"


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


def short_form(domains: dict[str, tuple[str, Survey]], crop: int, across: bool) -> list[str]:
    """The doctor's short form at the start of train.py, from the records' keys alone (sizes and hashes; no
    image decoded): images smaller than the crop and, unpaired (`across`), images in both domains (build_data.py
    already stores each image of a domain once). `domains`: name → (where, survey)."""
    lines = []
    for name, (where, s) in domains.items():
        small = int(np.count_nonzero((s.short_sides > 0) & (s.short_sides < crop)))  # crop 0: none
        if small:
            lines.append(f"{small} of the {s.count} images of {name} ({where}) are smaller than the {crop} px crop: "
                         "upscaled, blurry")
    if across and len(domains) == 2:
        (x, (_, sx)), (y, (_, sy)) = domains.items()
        both = (set(sx.sha256) & set(sy.sha256)) - {b""}
        if both:
            lines.append(f"{len(both)} images are in both {x} and {y} (the same bytes): they teach the translation "
                         "nothing")
    if lines:
        given = " ".join(dict.fromkeys(where for where, _ in domains.values()))
        lines.append(f"python -m cyclegan_tf.doctor {given} --image_size {crop} names them and looks for more (grey, "
                     "alpha, near-duplicates)" if across else f"python -m cyclegan_tf.doctor --paired {given} checks "
                     "that each pair's halves line up")
    return [f"note: data: {line}" for line in lines]


# ----------------------------------------------------------------------------------------------------------------
# Pairs (pix2pix): do the two halves show the same scene, in the same place?

ALIGN_SIDE = 32  # both halves are compared at this size
MAX_SHIFT = 4  # offsets searched, in pixels at ALIGN_SIDE (an eighth of the side)


@dataclass
class PairLook:
    name: str
    sizes: tuple[tuple[int, int], tuple[int, int]] = ((0, 0), (0, 0))  # (width, height) of A and of B
    at_zero: float = 0.0  # how well each half predicts the other where they are (0…1)
    peak: float = 0.0  # the best of that over offsets up to MAX_SHIFT
    shift: tuple[int, int] = (0, 0)  # (dx, dy) moving B by which gives that best, in pixels of A
    error: str = ""
    small: tuple[np.ndarray, np.ndarray] | None = None  # both halves at ALIGN_SIDE, for a sample of the pairs


def _pixels_of(data: bytes, name: str) -> np.ndarray:
    """[H, W, 1…3] uint8: a picture as grey or RGB, other pixels' first three bands as levels."""
    if probe(data, name).picture:
        with Image.open(io.BytesIO(data)) as img:
            img = ImageOps.exif_transpose(img)
            return np.asarray(img.convert("L" if img.mode in ("L", "1", "I;16", "I") else "RGB")).reshape(
                img.height, img.width, -1)
    array = read_array(data, name)
    return np.stack([_levels(array[..., c]) for c in range(min(3, array.shape[2]))], -1)


def _small(x: np.ndarray) -> np.ndarray:
    bands = [Image.fromarray(x[..., c]).resize((ALIGN_SIDE, ALIGN_SIDE), Image.Resampling.BOX)
             for c in range(x.shape[2])]
    return np.stack([np.asarray(b, np.float64) for b in bands], -1)


def _codes(x: np.ndarray) -> tuple[np.ndarray, int]:
    """Each pixel's colour quantised (about 64 codes whatever the bands), and the number of codes."""
    levels = {1: 64, 2: 8}.get(x.shape[-1], 4)
    flat = x.reshape(-1, x.shape[-1])
    lo, hi = flat.min(0), flat.max(0)
    q = np.clip(((x - lo) / np.maximum(hi - lo, 1e-9) * levels).astype(np.int64), 0, levels - 1)
    return (q * levels ** np.arange(x.shape[-1])).sum(-1), levels ** x.shape[-1]


def _explained(codes: np.ndarray, n: int, values: np.ndarray) -> float:
    """The correlation ratio: the share of the variance of `values` [P, C] that `codes` [P] explain (Roche et al.
    1998, multimodal registration: one half's regions predict the other's colours, whatever the two modalities)."""
    total = values.var(0).sum() * len(values)
    if total <= 0:
        return 0.0
    count = np.bincount(codes, minlength=n)[:, None]
    sums = np.stack([np.bincount(codes, values[:, c], n) for c in range(values.shape[1])], 1)
    squares = np.stack([np.bincount(codes, values[:, c] ** 2, n) for c in range(values.shape[1])], 1)
    within = (squares - np.where(count > 0, sums ** 2 / np.maximum(count, 1), 0)).sum()
    return float(1 - within / total)


def align(a: np.ndarray, b: np.ndarray) -> tuple[float, float, tuple[int, int]]:
    """(how well the halves predict each other where they are, the best over offsets, the offset (dx, dy) at
    ALIGN_SIDE moving `b` by which gives it) of two [ALIGN_SIDE, ALIGN_SIDE, C] images (_small's)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    (ca, na), (cb, nb) = _codes(a), _codes(b)
    m, k = ALIGN_SIDE - 2 * MAX_SHIFT, MAX_SHIFT
    core = (slice(k, k + m), slice(k, k + m))
    a_codes, a_values = ca[core].ravel(), a[core].reshape(-1, a.shape[-1])
    found: dict[tuple[int, int], float] = {}

    def at(d: tuple[int, int]) -> float:
        if d not in found:
            moved = (slice(k - d[1], k - d[1] + m), slice(k - d[0], k - d[0] + m))
            found[d] = max(_explained(a_codes, na, b[moved].reshape(-1, b.shape[-1])),
                           _explained(cb[moved].ravel(), nb, a_values))
        return found[d]

    def best() -> tuple[int, int]:
        return max(found, key=lambda d: (found[d], d == (0, 0)))  # a tie keeps the halves where they are

    at((0, 0))
    for d in ((dx, dy) for dy in range(-k, k + 1, 2) for dx in range(-k, k + 1, 2)):  # coarse, then around
        at(d)  # the best: the measure is smooth at this size, and a third of the offsets cost a third
    x, y = best()
    for d in ((x + i, y + j) for i in (-1, 0, 1) for j in (-1, 0, 1) if abs(x + i) <= k and abs(y + j) <= k):
        at(d)
    return found[(0, 0)], found[best()], best()


def look_pair(name: str, data_a: bytes, data_b: bytes | None, keep: bool = False) -> PairLook:
    """One pair: two files, or (data_b None) one side-by-side A|B image; `keep`: its halves at ALIGN_SIDE are
    kept, for the set's mismatched pairs (pair_lines)."""
    seen = PairLook(name)
    try:
        a = _pixels_of(data_a, name)
        if data_b is None:
            half = a.shape[1] // 2
            a, b = a[:, :half], a[:, half:2 * half]
        else:
            b = _pixels_of(data_b, name)
    except Exception as e:  # noqa: BLE001 - a damaged file surfaces as many kinds of error
        seen.error = _unreadable(e)
        return seen
    seen.sizes = ((a.shape[1], a.shape[0]), (b.shape[1], b.shape[0]))
    small = _small(a), _small(b)
    seen.at_zero, seen.peak, (dx, dy) = align(*small)
    seen.shift = (round(dx * a.shape[1] / ALIGN_SIDE), round(dy * a.shape[0] / ALIGN_SIDE))
    seen.small = small if keep else None
    return seen


def _look_pair_files(job: tuple[str, str | None, bool]) -> PairLook:
    a, b, keep = job
    try:
        return look_pair(a if b is None else f"{a} | {b}", Path(a).read_bytes(), Path(b).read_bytes() if b else None,
                         keep)
    except OSError as e:
        return PairLook(a, error=f"cannot be read ({e.strerror})")


def read_pairs(sources: list[str], workers: int) -> tuple[str, list[PairLook]]:
    """The pairs of one folder of A|B images, of two folders matched by file stem, or of --paired records."""
    first = Path(sources[0])
    if first.is_dir():
        files_a = find_images(first, recursive=True)
        if not files_a:
            raise UserError(f"{sources[0]}: no image files")
        if len(sources) == 1:
            pairs = [(str(p), None) for p in files_a]
        else:
            b = {p.relative_to(sources[1]).with_suffix(""): p for p in find_images(sources[1], recursive=True)}
            pairs = [(str(p), str(b[k])) for p in files_a if (k := p.relative_to(first).with_suffix("")) in b]
            if not pairs:
                raise UserError(f"{sources[0]} and {sources[1]} share no file stems (pairs are matched by name)")
        every = max(1, len(pairs) // NULL_PAIRS)
        jobs = [(a, b, i % every == 0) for i, (a, b) in enumerate(pairs)]
        with ProcessPoolExecutor(workers) as pool:
            return " and ".join(sources), list(pool.map(_look_pair_files, jobs, chunksize=max(1, len(jobs) // 64)))
    if len(sources) > 1:
        raise UserError("--paired takes one records file (A and B in each record), one folder of A|B images, or "
                        "two folders matched by file stem")
    return sources[0], [look_pair(name, a, b, keep=True) for name, a, b in _record_pairs(sources[0])]


def _record_pairs(source: str):
    import tensorflow as tf

    from cyclegan_tf.data import records

    try:
        files = records.resolve_files(source)
    except UserError:
        raise UserError(f"{source}: no such folder or TFRecord file") from None
    try:
        for raw in tf.data.TFRecordDataset(files).as_numpy_iterator():
            f = tf.train.Example.FromString(raw).features.feature
            if records.PREFIX_B + records.ENCODED not in f:
                raise UserError(f"{source}: records of one domain, not pairs (build them with build_data.py "
                                "--paired, or drop --paired)")
            name = f[records.PREFIX_A + "file_name"].bytes_list.value
            yield ((os.fsdecode(name[0]) if name else "?"), f[records.PREFIX_A + records.ENCODED].bytes_list.value[0],
                   f[records.PREFIX_B + records.ENCODED].bytes_list.value[0])
    except (tf.errors.OpError, IndexError) as e:
        raise UserError(f"{source}: not readable build_data.py records ({type(e).__name__})") from None


SHIFT_GAIN = 0.05  # a pair that explains this much more of itself moved than where it is, is shifted
UNRELATED = 0.65  # a wrong pair explains less than this share of what the set's median pair does …
NULL_QUANTILE = 0.9  # … and less than this quantile of what the set's halves explain of other pairs' halves
NULL_PAIRS = 256  # mismatched pairs (each kept pair's A with the next one's B) that measure the latter


def mismatched(looks: list[PairLook]) -> np.ndarray:
    """What halves of different pairs of the set explain of each other: the values of wrong pairs."""
    kept = [p.small for p in looks if p.small is not None]
    if len(kept) < 5:
        return np.zeros([0])
    return np.array([align(kept[i][0], kept[(i + 1) % len(kept)][1])[1] for i in range(len(kept))])


def pair_lines(source: str, looks: list[PairLook]) -> list[str]:
    """The pairs' summary and one line per pair whose halves do not line up or do not match."""
    good = [p for p in looks if not p.error]
    median = float(np.median([p.peak for p in good])) if good else 0.0
    null = mismatched(good)
    others = float(np.quantile(null, NULL_QUANTILE)) if len(null) else -1.0
    wrong = min(UNRELATED * median, others)
    unreadable = f", {len(looks) - len(good)} unreadable" if len(good) < len(looks) else ""
    out = [f"pairs: {source}: {len(looks)} pairs{unreadable}; the median pair's halves explain {median:.2f} of each "
           "other"]
    for p in looks:
        if p.error:
            out.append(f"{p.name}: {p.error}: build_data.py skips it; remove or replace it")
            continue
        if p.sizes[0] != p.sizes[1]:
            out.append(f"{p.name}: A is {p.sizes[0][0]}×{p.sizes[0][1]} but B {p.sizes[1][0]}×{p.sizes[1][1]}: both "
                       "are resized to one size, so check they cover the same view")
        if p.peak < wrong:
            out.append(f"{p.name}: the halves do not look like one scene (they explain {p.peak:.2f} of each other, "
                       f"the set's median pair {median:.2f}, 9 in 10 halves of different pairs up to {others:.2f}): "
                       "a wrong pair? check it or drop it")
        elif p.peak > p.at_zero + SHIFT_GAIN:
            out.append(f"{p.name}: B lines up with A only when moved by about {p.shift[0]:+d}, {p.shift[1]:+d} px "
                       f"(they explain {p.at_zero:.2f} of each other where they are, {p.peak:.2f} moved): re-crop "
                       "or drop it")
    return out


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
    parser.add_argument("--paired", action="store_true", help="pix2pix pairs: one folder of A|B images, two "
                        "folders matched by file stem, or build_data.py --paired records; checks each pair's halves "
                        "show one scene in the same place")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes reading images")
    args = parser.parse_args(argv)
    return exit_status(lambda: run(args))


def run(args: argparse.Namespace) -> None:
    if len(args.data) > 2:
        raise UserError(f"give one or two domains, not {len(args.data)}")
    if not 0 <= args.duplicate_bits <= 64 or args.image_size < 0 or args.workers < 1:
        raise UserError("--duplicate_bits takes 0…64, --image_size at least 0, --workers at least 1")
    if args.paired:
        if args.fix_out:
            raise UserError("--fix_out cleans two domains; with --paired, drop the pairs named here by hand")
        source, pairs = read_pairs(args.data, args.workers)
        lines = pair_lines(source, pairs)
        print("\n".join(lines))
        print(f"{len(lines) - 1} finding(s)")
        return
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
