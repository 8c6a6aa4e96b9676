"""Turning image folders (or TensorFlow Datasets splits) into TFRecords: the work of build_data.py.

Images are decoded and validated in a thread pool: PIL and TensorFlow release the GIL while they
decode and encode, so threads use every core without the start-up cost of processes. Results are
consumed in a fixed order, so the output depends only on the files and `seed`.
"""
from __future__ import annotations

import collections
import difflib
import logging
import os
import random
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np
from tqdm import tqdm

from cyclegan_tf.data import imagefiles
from cyclegan_tf.data.imagefiles import BadImage, ImageRecord, Probe, find_images, normalise, split_side_by_side
from cyclegan_tf.data.pixels import FULL, MAX_CHANNELS, Kind
from cyclegan_tf.errors import UserError, disk_failure, one_line

if TYPE_CHECKING:
    import tensorflow as tf

    from cyclegan_tf.data import records

T = TypeVar("T")
R = TypeVar("R")
Records = "ImageRecord | tuple[ImageRecord, ImageRecord]"
SAMPLES_PER_IMAGE = 4096  # values per channel and image drawn to estimate a float domain's percentiles
PERCENTILES = (0.5, 99.5)  # --X_range auto: the domain's range without its rarest extremes


@dataclass(frozen=True)
class Item:
    """What one record is made of: an image (a file, or bytes from TensorFlow Datasets), an A|B image to split
    (`split`), or an (A, B) pair of files; `names` are the file names stored."""

    sources: tuple[Path | bytes, ...]
    names: tuple[str, ...]
    split: bool = False

    def _data(self, i: int) -> bytes:
        src = self.sources[i]
        if isinstance(src, bytes):
            return src
        if imagefiles._broken_link(src):  # noqa: SLF001 - the same test load_image makes
            raise BadImage("broken symlink")
        try:
            return src.read_bytes()
        except OSError as e:
            raise BadImage(f"cannot read ({e.strerror})") from None

    def _all_data(self) -> tuple[bytes, ...]:
        return tuple(self._data(i) for i in range(len(self.sources)))

    def probes(self, data: tuple[bytes, ...] | None = None) -> tuple[Probe, ...]:
        """What each part holds (an A|B image: both halves alike)."""
        data = data or self._all_data()
        found = tuple(imagefiles.probe(d, n) for d, n in zip(data, self.names))
        return found * 2 if self.split else found

    def arrays(self, kinds: tuple[Kind, ...], data: tuple[bytes, ...] | None = None) -> tuple[np.ndarray, ...]:
        """Each part's pixels as its domain's kind."""
        data = data or self._all_data()
        if self.split:
            return _halves(imagefiles.load_pixels(data[0], self.names[0], kinds[0].channels, kinds[0].dtype))
        return tuple(imagefiles.load_pixels(d, n, k.channels, k.dtype) for d, n, k in zip(data, self.names, kinds))

    def records(self, kinds: tuple[Kind, ...], convert: bool = False) -> ImageRecord | tuple[ImageRecord, ImageRecord]:
        """The record(s); `convert`: every image is made an 8-bit picture of its domain (16-bit scaled)."""
        data = self._all_data()  # each file read once
        pictures = convert or all(p.picture for p in self.probes(data))
        if pictures and all(k.rgb for k in kinds):  # 8-bit RGB: the file's own bytes where they decode to it
            recs = tuple(normalise(d, n) for d, n in zip(data, self.names))
            return split_side_by_side(recs[0]) if self.split else recs if len(recs) > 1 else recs[0]
        if pictures and not self.split and all(k.channels == 1 and k.dtype == "uint8" for k in kinds):
            recs = tuple(imagefiles.grey_record(d, n) for d, n in zip(data, self.names))
            return recs if len(recs) > 1 else recs[0]
        names = self.names * 2 if self.split else self.names
        arrays = self.arrays(kinds, data)
        recs = tuple(imagefiles.array_record(a, n, _clipped(a, k)) for a, n, k in zip(arrays, names, kinds))
        return recs if len(recs) > 1 else recs[0]


def _halves(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if img.shape[1] % 2:
        raise BadImage(f"width {img.shape[1]} is odd: not an A|B pair")
    half = img.shape[1] // 2
    return np.ascontiguousarray(img[:, :half]), np.ascontiguousarray(img[:, half:])


def _clipped(arr: np.ndarray, kind: Kind) -> int:
    lo, hi = kind.lo_hi()
    return int(np.count_nonzero((arr < lo) | (arr > hi)))


Job = tuple[str, Item]


@dataclass
class Summary:
    name: str
    outputs: list[str] = field(default_factory=list)
    written: int = 0
    skipped: collections.Counter = field(default_factory=collections.Counter)
    duplicates: int = 0
    unmatched: int = 0
    bytes: int = 0
    seconds: float = 0.0
    kinds: tuple[Kind, ...] = ()
    clipped: int = 0
    values: int = 0
    converted: int = 0  # pictures made grey or RGB to fit the domain

    def line(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items()))
        out = self.outputs[0] if len(self.outputs) == 1 else f"{len(self.outputs)} shards {self.outputs[0]}…"
        parts = [f"{self.name}: wrote {self.written} images to {out} ({self.bytes / 1e6:.1f} MB)",
                 f"skipped {skipped}" + (f" ({reasons})" if reasons else ""),
                 f"{self.duplicates} duplicates"]
        if self.unmatched:
            parts.append(f"{self.unmatched} unmatched")
        if any(not k.rgb for k in self.kinds):
            parts.append(" and ".join(k.describe() for k in dict.fromkeys(self.kinds)))
            share = f" ({100 * self.clipped / self.values:.2g}%)" if self.values else ""
            parts.append(f"{self.clipped} values clipped to the range{share}")
        if self.converted:
            parts.append(f"{self.converted} converted to {'RGB' if self.kinds[0].channels == 3 else 'grey'}")
        return printable("; ".join(parts) + f"; {self.seconds:.1f} s")


def printable(text: str) -> str:
    """`text` with the bytes of a file name that is not UTF-8 shown as U+FFFD (printing them would fail)."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")


def _warn(msg: str) -> None:
    tqdm.write(f"warning: {printable(msg)}", file=sys.stderr)


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R | BadImage]:
    """fn over items in a thread pool, in order, with a bounded window; BadImage is yielded, not raised."""

    def safe(item: T) -> R | BadImage:
        try:
            return fn(item)
        except BadImage as e:
            return e

    if workers <= 1:
        yield from map(safe, items)
        return
    pool = ThreadPoolExecutor(workers)
    try:
        window: collections.deque[Future] = collections.deque()
        for item in items:
            window.append(pool.submit(safe, item))
            if len(window) >= 4 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # after Ctrl-C, do not decode the queued window first


@dataclass
class Plan:
    """One output to build: its jobs, where they come from (`source`, for messages) and where they go."""

    name: str
    output: str
    jobs: list[Job]
    source: str
    output_flag: str = "output"
    unmatched: int = 0  # paired by stem: files without a partner, already reported
    channels: tuple[int, ...] = (0, 0)  # per part (an image, or A and B): --X_channels, --Y_channels; 0 from the files
    ranges: tuple[str, ...] = ("", "")  # per part: --X_range, --Y_range ('' auto, 'full', 'lo,hi…')
    flags: tuple[str, ...] = ("--X", "--Y")  # the flag prefix of each part, for messages
    kinds: tuple[Kind, ...] = ()  # decided by `decide_kinds` before writing
    converted: int = 0
    convert: bool = False  # every image made an 8-bit picture (--X_channels 1 or 3 given for a mixed folder)


def check_outputs(outputs: list[tuple[str, str]], num_shards: int = 1) -> None:
    """One-line error if two outputs ((flag, path) pairs) would write or delete the same file, or too many shards."""
    from cyclegan_tf.data import records  # TensorFlow loads here, after the cheap checks of the inputs

    if num_shards > records.MAX_SHARDS:
        raise UserError(f"--num_shards={num_shards}: at most {records.MAX_SHARDS}")
    for i, (flag_a, a) in enumerate(outputs):
        for flag_b, b in outputs[i + 1:]:
            shared = records.shared_file(a, b, num_shards)
            if shared:
                raise UserError(f"{flag_a}={a} and {flag_b}={b} both write {shared}: give each its own file")


def _check_shards(plan: Plan, num_shards: int) -> None:
    if len(plan.jobs) < num_shards:
        raise UserError(f"--num_shards={num_shards}: more shards than the {len(plan.jobs)} images of {plan.source}; "
                        "a shard would be empty")


def build_all(plans: list[Plan], *, num_shards: int = 1, workers: int = 0) -> list[Summary]:
    """Writes every plan's output under temporary names and renames them all only when every one succeeded,
    so a failure (a bad folder, no usable image, Ctrl-C, a full disk) leaves every previous output as it was."""
    for plan in plans:
        _check_shards(plan, num_shards)
    check_outputs([(p.output_flag, p.output) for p in plans], num_shards)
    from cyclegan_tf.data import records

    workers = workers or os.cpu_count() or 1
    for plan in plans:  # every kind is known, and every range measured, before anything is written
        decide_kinds(plan, workers)
    staged: list[records.Staged] = []
    try:
        for plan in plans:  # every output folder is made and checked before the long part starts
            staged.append(records.prepare_output(plan.output, num_shards))
        summaries = [_write(plan, out, num_shards=num_shards, workers=workers) for plan, out in zip(plans, staged)]
        records.commit(staged)
    except BaseException:
        records.discard(staged)
        raise
    return summaries


def _write(plan: Plan, staged: records.Staged, *, num_shards: int, workers: int) -> Summary:
    from cyclegan_tf.data import records

    summary, jobs = Summary(plan.name, unmatched=plan.unmatched, kinds=plan.kinds, converted=plan.converted), plan.jobs
    start = time.perf_counter()
    seen: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc=plan.name, unit="img", disable=not sys.stderr.isatty(), file=sys.stderr)

    def examples() -> Iterator[bytes]:
        made = ordered_map(lambda job: job[1].records(plan.kinds, plan.convert), jobs, workers)
        for (label, _), result in zip(jobs, made):
            bar.update(1)
            if isinstance(result, BadImage):
                _warn(f"{label}: skipped, {result}")
                summary.skipped[str(result).split(" (")[0]] += 1
                continue
            pair = result if isinstance(result, tuple) else (result,)
            digest = "+".join(r.sha256 for r in pair)
            if digest in seen:
                _warn(f"{label}: duplicate of {seen[digest]}, stored once")
                summary.duplicates += 1
                continue
            seen[digest] = label
            summary.written += 1
            summary.bytes += sum(len(r.encoded) for r in pair)
            summary.clipped += sum(r.clipped for r in pair)
            summary.values += sum(r.height * r.width * r.channels for r in pair)
            yield records.to_example(*pair, kinds=plan.kinds)

    try:
        records.write_staged(staged, examples())
    finally:
        bar.close()
    summary.outputs = staged.finals
    summary.seconds = time.perf_counter() - start
    if summary.written == 0:
        raise UserError(f"{plan.name}: no usable image among {len(jobs)} files of {plan.source}; nothing written")
    if summary.written < num_shards:
        raise UserError(f"--num_shards={num_shards}: only {summary.written} usable images in {plan.source}; "
                        "a shard would be empty, nothing written")
    return summary


def decide_kinds(plan: Plan, workers: int) -> None:
    """Sets `plan.kinds`: each part's channels and type from its files' headers, and its range from the
    flags or, where not given, from all its values (a second pass over the files)."""
    parts = 2 if plan.jobs and (plan.jobs[0][1].split or len(plan.jobs[0][1].sources) == 2) else 1
    probes = [(label, p) for (label, _), p in zip(plan.jobs, ordered_map(lambda j: j[1].probes(), plan.jobs, workers))
              if not isinstance(p, BadImage)]
    bases = [_decide(plan, i, [(label, p[i]) for label, p in probes]) for i in range(parts)]
    kinds = tuple(bases)
    for i, base in enumerate(bases):
        flag, text = f"{plan.flags[i]}_range", plan.ranges[i]
        if text not in ("", "auto", "full"):
            kinds = (*kinds[:i], base.with_range(text, flag), *kinds[i + 1:])
        elif base.dtype in FULL and (text == "full" or (not text and base.dtype == "uint8")):
            kinds = (*kinds[:i], Kind(base.channels, base.dtype, (FULL[base.dtype][0],), (FULL[base.dtype][1],)),
                     *kinds[i + 1:])
    todo = [i for i, k in enumerate(kinds) if k.lo == ()]
    if todo:
        kinds = _measure_ranges(plan, kinds, todo, [plan.ranges[i] == "full" for i in range(parts)], workers)
    plan.kinds = kinds


def _decide(plan: Plan, part: int, probes: list[tuple[str, Probe]]) -> Kind:
    """The channels and type of one part; lo/hi left empty (measured or set by the caller)."""
    flag = f"{plan.flags[part]}_channels"
    given = plan.channels[part]
    if given and not 1 <= given <= MAX_CHANNELS:
        raise UserError(f"{flag}={given}: between 1 and {MAX_CHANNELS} (0: from the files)")
    if not probes:
        return Kind(given or 3, "uint8", (), ())
    if all(p.picture for _, p in probes):
        colour = sum(p.channels == 3 for _, p in probes)
        channels = given or (3 if colour else 1)
        if channels not in (1, 3):
            raise UserError(f"{flag}={given}: {plan.source} holds 8-bit pictures, which become grey (1) or RGB (3)")
        plan.converted += sum(p.channels != channels for _, p in probes)
        return Kind(channels, "uint8", (), ())
    kinds: dict[tuple[int, str], str] = {}
    for label, p in probes:
        kinds.setdefault((p.channels, "picture" if p.picture else p.dtype), label)
    if len(kinds) > 1 and given in (1, 3) and all(p.dtype in ("uint8", "uint16") for _, p in probes):
        plan.convert = True
        plan.converted += sum(p.channels != given or not p.picture for _, p in probes)
        return Kind(given, "uint8", (), ())
    if len(kinds) > 1:
        shown = "; ".join(f"{printable(label)} is a {p.describe()}" for label, p in
                          ((lbl, next(p for lb, p in probes if lb == lbl)) for lbl in list(kinds.values())[:3]))
        raise UserError(f"{plan.source}: the images are not all of one kind: {shown}; give each domain one kind, or "
                        f"{flag} 1 or 3 to make every 8- and 16-bit image an 8-bit grey or RGB picture")
    (channels, dtype), = kinds
    if given and given != channels:
        raise UserError(f"{flag}={given}: the images of {plan.source} have {channels} channels ({dtype}); only "
                        "8-bit pictures are converted")
    return Kind(channels, dtype, (), ())


def _measure_ranges(plan: Plan, kinds: tuple[Kind, ...], todo: list[int], full: list[bool],
                    workers: int) -> tuple[Kind, ...]:
    """The ranges of parts `todo` from every image: PERCENTILES per channel (exact for integers, from
    SAMPLES_PER_IMAGE values per image for floats), or the extremes with `full`."""
    placeholder = tuple(Kind(k.channels, k.dtype, (0.0,), (1.0,)) if not k.lo else k for k in kinds)
    stats = {i: _RangeStats(kinds[i]) for i in todo}
    for n, arrays in enumerate(ordered_map(lambda j: j[1].arrays(placeholder), plan.jobs, workers)):
        if not isinstance(arrays, BadImage):
            for i in todo:
                stats[i].add(arrays[i], n)
    return tuple(stats[i].kind(full[i]) if i in stats else k for i, k in enumerate(kinds))


class _RangeStats:
    def __init__(self, kind: Kind) -> None:
        self.base, self.c = kind, kind.channels
        self.bins = 256 if kind.dtype == "uint8" else 65536 if kind.dtype == "uint16" else 0
        self.hist = np.zeros((self.c, self.bins), np.int64) if self.bins else None
        self.samples: list[np.ndarray] = []
        self.low, self.high = np.full(self.c, np.inf), np.full(self.c, -np.inf)

    def add(self, arr: np.ndarray, index: int) -> None:
        flat = arr.reshape(-1, self.c)
        self.low, self.high = np.minimum(self.low, flat.min(0)), np.maximum(self.high, flat.max(0))
        if self.hist is not None:
            for ch in range(self.c):
                self.hist[ch] += np.bincount(flat[:, ch], minlength=self.bins)
        else:
            rows = np.random.default_rng(index).choice(len(flat), min(len(flat), SAMPLES_PER_IMAGE), replace=False)
            self.samples.append(flat[rows])

    def kind(self, full: bool) -> Kind:
        if full or not np.isfinite(self.low).all():
            lo, hi = self.low, self.high
        elif self.hist is not None:
            cdf = np.cumsum(self.hist, axis=1) / self.hist.sum(axis=1, keepdims=True)
            lo = np.array([np.searchsorted(row, PERCENTILES[0] / 100) for row in cdf], np.float64)
            hi = np.array([np.searchsorted(row, PERCENTILES[1] / 100) for row in cdf], np.float64)
        else:
            lo, hi = np.percentile(np.concatenate(self.samples), PERCENTILES, axis=0)
        lo = np.where(np.isfinite(lo), lo, 0.0)
        hi = np.where(hi > lo, hi, lo + np.maximum(1.0, np.abs(lo)) * (1 if self.hist is not None else 1e-3))
        lo_t, hi_t = tuple(float(np.float32(v)) for v in lo), tuple(float(np.float32(v)) for v in hi)
        if len(set(zip(lo_t, hi_t))) == 1:
            lo_t, hi_t = lo_t[:1], hi_t[:1]
        return Kind(self.c, self.base.dtype, lo_t, hi_t)


def _images(folder: str, flag: str, recursive: bool) -> list[Path]:
    if not folder:
        raise UserError(f"{flag} is required")
    if not os.path.isdir(folder):
        raise UserError(f"{flag}={folder}: no such folder")
    files = find_images(folder, recursive, broken_links=True)
    if not files:
        hint = "" if recursive else " (use --recursive for subfolders)"
        raise UserError(f"{flag}={folder}: no image files (.jpg .jpeg .png .bmp .gif .webp .tif .tiff .npy){hint}")
    return files


def _domain(flag: str) -> str:
    """--X or --Y: the prefix of the flags (--X_range, --X_channels) that describe a flag's domain."""
    return flag[:3] if flag[:4] in ("--X_", "--Y_") else "--X"


def _shuffled(jobs: list[T], seed: int | None) -> list[T]:
    if seed is not None:
        random.Random(seed).shuffle(jobs)
    return jobs


def _rel(path: Path, root: str) -> str:
    return path.relative_to(root).as_posix()


def plan_folder(name: str, input_dir: str, output: str, *, flag: str = "--input_dir", output_flag: str = "output",
                recursive: bool = False, seed: int | None = 0, channels: int = 0, value_range: str = "") -> Plan:
    """One domain: every image under `input_dir` (shuffled with `seed`; None keeps order), of `channels` (0:
    from the files) with values in `value_range` (build_data.py's --X_range). Reads no image yet."""
    files = _images(input_dir, flag, recursive)
    jobs: list[Job] = [(str(p), Item((p,), (_rel(p, input_dir),))) for p in files]
    return Plan(name, output, _shuffled(jobs, seed), f"{flag}={input_dir}", output_flag, flags=(_domain(flag),),
                channels=(channels,), ranges=(value_range,))


def build_folder(name: str, input_dir: str, output: str, *, flag: str = "--input_dir", recursive: bool = False,
                 seed: int | None = 0, num_shards: int = 1, workers: int = 0, channels: int = 0,
                 value_range: str = "") -> Summary:
    """One domain: every image under `input_dir` into `output` (shuffled with `seed`; None keeps order)."""
    plan = plan_folder(name, input_dir, output, flag=flag, recursive=recursive, seed=seed, channels=channels,
                       value_range=value_range)
    return build_all([plan], num_shards=num_shards, workers=workers)[0]


def plan_paired(input_a: str, input_b: str | None, output: str, *, output_flag: str = "--output_file",
                recursive: bool = False, seed: int | None = 0) -> Plan:
    """Pairs for pix2pix: one folder of side-by-side A|B images, or two folders matched by file stem."""
    files_a = _images(input_a, "--X_input_dir", recursive)
    if not input_b:
        jobs: list[Job] = [(str(p), Item((p,), (_rel(p, input_a),), split=True)) for p in files_a]
        return Plan("pairs", output, _shuffled(jobs, seed), f"--X_input_dir={input_a}", output_flag)

    def by_stem(files: list[Path], root: str) -> dict[str, Path]:
        return {str(Path(_rel(p, root)).with_suffix("")): p for p in files}

    a = by_stem(files_a, input_a)
    b = by_stem(_images(input_b, "--Y_input_dir", recursive), input_b)
    unmatched = sorted(a.keys() ^ b.keys())
    for stem in unmatched:
        where = input_b if stem in a else input_a
        _warn(f"{(a.get(stem) or b.get(stem))}: no file with stem '{stem}' in {where}, skipped")
    common = sorted(a.keys() & b.keys())
    if not common:
        raise UserError(f"--X_input_dir={input_a} and --Y_input_dir={input_b} share no file stems")
    jobs = [(str(a[s]), Item((a[s], b[s]), (_rel(a[s], input_a), _rel(b[s], input_b)))) for s in common]
    return Plan("pairs", output, _shuffled(jobs, seed), f"--X_input_dir={input_a} and --Y_input_dir={input_b}",
                output_flag, len(unmatched))


def build_paired(input_a: str, input_b: str | None, output: str, *, recursive: bool = False,
                 seed: int | None = 0, num_shards: int = 1, workers: int = 0) -> Summary:
    """Pairs for pix2pix into `output`: see plan_paired."""
    plan = plan_paired(input_a, input_b, output, recursive=recursive, seed=seed)
    return build_all([plan], num_shards=num_shards, workers=workers)[0]


@dataclass(frozen=True)
class TfdsSplit:
    """One split of a TensorFlow Datasets dataset to write, and how the user named it (for messages)."""

    name: str
    split: str
    output: str
    output_flag: str = "output"
    plan: str = ""  # the summary's name; the split when empty
    given: str = ""  # the flag as given, e.g. "--X_tfds=mnist:train"; empty: --tfds_name and --tfds_split


def parse_tfds_spec(flag: str, value: str) -> tuple[str, str]:
    """(NAME, SPLIT) of a NAME:SPLIT flag value, or a one-line error naming `flag`.

    The split follows the last colon outside brackets: a name may hold colons of its own (a version,
    mnist:3.0.1; a namespace, huggingface:mnist) and a split may slice (train[:1000]). The split is
    required, since with those colons a name alone cannot be told from a name and a split.
    """
    depth, cut = 0, -1
    for i, c in enumerate(value):
        depth += {"[": 1, "]": -1}.get(c, 0)
        if c == ":" and depth == 0:
            cut = i
    name, split = (value[:cut].strip(), value[cut + 1:].strip()) if cut >= 0 else (value.strip(), "")
    if not name or not split:
        raise UserError(f"{flag}={value}: give NAME:SPLIT, e.g. mnist:train or svhn_cropped:test")
    return name, split


def _where_stored(data_dir: str | None, builder_dir: str) -> str:
    if data_dir:
        return f"--tfds_data_dir={data_dir}"
    return f"{builder_dir} (give --tfds_data_dir if it is prepared elsewhere)"


def _prepared(data_dir: str | None) -> list[str]:
    """Names of the datasets prepared in `data_dir` (NAME/VERSION/dataset_info.json, or NAME/CONFIG/VERSION/…)."""
    if not data_dir or not os.path.isdir(data_dir):
        return []
    return sorted({Path(p).relative_to(data_dir).parts[0] for p in
                   [*Path(data_dir).glob("*/*/dataset_info.json"), *Path(data_dir).glob("*/*/*/dataset_info.json")]})


def _is_network_failure(e: BaseException) -> bool:
    """Whether a failed download failed for want of a network (not a checksum, a full disk or a manual step)."""
    import urllib.error

    import requests

    return isinstance(e, (requests.ConnectionError, requests.Timeout, urllib.error.URLError, ConnectionError,
                          TimeoutError, socket.gaierror))


def _open_tfds(s: TfdsSplit, data_dir: str | None) -> tf.data.Dataset:
    """The split as a dataset of undecoded images, with the dataset prepared (downloaded once if need be)."""
    import tensorflow_datasets as tfds  # slow to import; only this path needs it

    name_flag = s.given or f"--tfds_name={s.name}"
    split_flag = s.given or f"--tfds_split={s.split}"
    try:
        builder = tfds.builder(s.name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        # tfds' message lists all of its 400-odd datasets on as many lines; a close name or two says more.
        known = _prepared(data_dir) + tfds.list_builders(with_community_datasets=False)
        longer = [k for k in known if len(s.name) >= 3 and k.startswith(s.name.lower())]  # svhn: svhn_cropped
        close = longer or difflib.get_close_matches(s.name.lower(), known, 3)
        hint = f"; did you mean {' or '.join(close[:3])}?" if close else ""
        where = f", and none is prepared under --tfds_data_dir={data_dir}" if data_dir else ""
        raise UserError(f"{name_flag}: TensorFlow Datasets has no dataset {s.name}{where}{hint}") from None
    except Exception as e:  # noqa: BLE001 - tfds raises many kinds for a bad name, config or version
        raise UserError(f"{name_flag}: {one_line(str(e))[:200]}") from None
    features = builder.info.features
    image = features["image"] if isinstance(features, tfds.features.FeaturesDict) and "image" in features else None
    if not isinstance(image, tfds.features.Image):
        raise UserError(f"{name_flag}: dataset {s.name} has no 'image' feature of encoded images")
    if not sys.stderr.isatty():
        tfds.disable_progress_bar()  # as ours (see _write): bars are for terminals, not for logs
    from tensorflow_datasets.core.download import downloader

    # tfds retries a failed download 10 times with exponential back-off (3.5 minutes); an offline
    # user should hear at once, and a real connection rarely needs more than two tries.
    downloader.MAX_RETRIES = min(getattr(downloader, "MAX_RETRIES", 2), 2)
    # urllib3 warns at every retry; the one line below says what they amount to.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - network failures surface as many exception types
        where = _where_stored(data_dir, str(builder.data_dir))
        if _is_network_failure(e):
            raise UserError(f"{name_flag}: {s.name} is not prepared in {where} and could not be downloaded "
                            f"({type(e).__name__}); these machines may be offline") from None
        disk = disk_failure(e, builder.data_dir)
        if disk is not None:
            raise disk from None
        raise UserError(f"{name_flag}: {s.name} is not prepared in {where} and preparing it failed: "
                        f"{one_line(str(e))[:200]}") from None
    try:
        return builder.as_dataset(split=s.split, decoders={"image": tfds.decode.SkipDecoding()})
    except ValueError as e:  # an unknown split, or a slice tfds cannot parse
        raise UserError(f"{split_flag}: {one_line(str(e))[:200]}") from None


def plan_tfds_splits(splits: list[TfdsSplit], *, data_dir: str | None = None, seed: int | None = 0) -> list[Plan]:
    """Splits of TensorFlow Datasets image datasets (e.g. mnist train; cycle_gan/horse2zebra trainA).

    Every dataset is prepared and every split opened before any is read, so a missing second dataset is
    reported before the first one's images are read. Images are stored as the dataset's own encoded
    bytes where TensorFlow decodes them to PIL's picture (imagefiles.normalise), as files from a folder
    are: a dataset of grey images (MNIST's 28×28×1 PNGs) makes a grey domain unless --X_channels says 3.
    """
    import tensorflow_datasets as tfds

    opened = [_open_tfds(s, data_dir) for s in splits]
    plans = []
    for s, ds in zip(splits, opened):
        jobs: list[Job] = []
        for i, ex in enumerate(tfds.as_numpy(ds)):
            label = f"{s.name}/{s.split}[{i}]"
            jobs.append((label, Item((bytes(ex["image"]),), (label,))))
        source = s.given or f"--tfds_split={s.split}"
        if not jobs:
            raise UserError(f"{source}: the split holds no images")
        plans.append(Plan(s.plan or s.split, s.output, _shuffled(jobs, seed), source, s.output_flag,
                          flags=(_domain(s.output_flag),)))
    return plans


def plan_tfds(name: str, split: str, output: str, *, data_dir: str | None = None, output_flag: str = "output",
              seed: int | None = 0) -> Plan:
    """One split of a TensorFlow Datasets image dataset (e.g. cycle_gan/horse2zebra, trainA)."""
    return plan_tfds_splits([TfdsSplit(name, split, output, output_flag)], data_dir=data_dir, seed=seed)[0]


def build_tfds(name: str, split: str, output: str, *, data_dir: str | None = None, seed: int | None = 0,
               num_shards: int = 1, workers: int = 0) -> Summary:
    """One split of a TensorFlow Datasets image dataset into `output`: see plan_tfds_splits."""
    plan = plan_tfds(name, split, output, data_dir=data_dir, seed=seed)
    return build_all([plan], num_shards=num_shards, workers=workers)[0]
