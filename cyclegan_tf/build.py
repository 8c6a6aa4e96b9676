"""Turning image folders (or a TensorFlow Datasets split) into TFRecords: the work of build_data.py.

Images are decoded and validated in a thread pool: PIL and TensorFlow release the GIL while they
decode and encode, so threads use every core without the start-up cost of processes. Results are
consumed in a fixed order, so the output depends only on the files and `seed`.
"""
from __future__ import annotations

import collections
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from tqdm import tqdm

from cyclegan_tf.errors import UserError
from cyclegan_tf.imagefiles import BadImage, ImageRecord, find_images, load_image, normalise, split_side_by_side

T = TypeVar("T")
R = TypeVar("R")
Job = tuple[str, Callable[[], "ImageRecord | tuple[ImageRecord, ImageRecord]"]]


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

    def line(self) -> str:
        skipped = sum(self.skipped.values())
        reasons = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items()))
        out = self.outputs[0] if len(self.outputs) == 1 else f"{len(self.outputs)} shards {self.outputs[0]}…"
        parts = [f"{self.name}: wrote {self.written} images to {out} ({self.bytes / 1e6:.1f} MB)",
                 f"skipped {skipped}" + (f" ({reasons})" if reasons else ""),
                 f"{self.duplicates} duplicates"]
        if self.unmatched:
            parts.append(f"{self.unmatched} unmatched")
        return "; ".join(parts) + f"; {self.seconds:.1f} s"


def _warn(msg: str) -> None:
    tqdm.write(f"warning: {msg}", file=sys.stderr)


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
    with ThreadPoolExecutor(workers) as pool:
        window: collections.deque[Future] = collections.deque()
        for item in items:
            window.append(pool.submit(safe, item))
            if len(window) >= 4 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


def _write(name: str, output: str, jobs: list[Job], *, num_shards: int, workers: int,
           summary: Summary | None = None) -> Summary:
    from cyclegan_tf import records  # TensorFlow loads here, after the cheap checks of the inputs

    summary = summary or Summary(name)
    start = time.perf_counter()
    seen: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc=name, unit="img", disable=not sys.stderr.isatty(), file=sys.stderr)

    def examples() -> Iterator[bytes]:
        for (label, _), result in zip(jobs, ordered_map(lambda job: job[1](), jobs, workers)):
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
            yield records.to_example(*pair)

    try:
        summary.outputs = records.write_records(output, examples(), num_shards)
    finally:
        bar.close()
    summary.seconds = time.perf_counter() - start
    if summary.written == 0:
        for f in summary.outputs:
            os.remove(f)
        raise UserError(f"{name}: no usable image among {len(jobs)} files; nothing written")
    return summary


def _images(folder: str, flag: str, recursive: bool) -> list[Path]:
    if not folder:
        raise UserError(f"{flag} is required")
    if not os.path.isdir(folder):
        raise UserError(f"{flag}={folder}: no such folder")
    files = find_images(folder, recursive)
    if not files:
        hint = "" if recursive else " (use --recursive for subfolders)"
        raise UserError(f"{flag}={folder}: no image files (.jpg .jpeg .png .bmp .gif .webp .tif .tiff){hint}")
    return files


def _shuffled(jobs: list[T], seed: int | None) -> list[T]:
    if seed is not None:
        random.Random(seed).shuffle(jobs)
    return jobs


def _rel(path: Path, root: str) -> str:
    return path.relative_to(root).as_posix()


def build_folder(name: str, input_dir: str, output: str, *, flag: str = "--input_dir", recursive: bool = False,
                 seed: int | None = 0, num_shards: int = 1, workers: int = 0) -> Summary:
    """One domain: every image under `input_dir` into `output` (shuffled with `seed`; None keeps order)."""
    files = _images(input_dir, flag, recursive)
    jobs: list[Job] = [(str(p), lambda p=p: load_image(p, _rel(p, input_dir))) for p in files]
    return _write(name, output, _shuffled(jobs, seed), num_shards=num_shards, workers=workers or os.cpu_count() or 1)


def build_paired(input_a: str, input_b: str | None, output: str, *, recursive: bool = False,
                 seed: int | None = 0, num_shards: int = 1, workers: int = 0) -> Summary:
    """Pairs for pix2pix: one folder of side-by-side A|B images, or two folders matched by file stem."""
    workers = workers or os.cpu_count() or 1
    files_a = _images(input_a, "--X_input_dir", recursive)
    if not input_b:
        jobs: list[Job] = [(str(p), lambda p=p: split_side_by_side(load_image(p, _rel(p, input_a))))
                           for p in files_a]
        return _write("pairs", output, _shuffled(jobs, seed), num_shards=num_shards, workers=workers)

    def by_stem(files: list[Path], root: str) -> dict[str, Path]:
        return {str(Path(_rel(p, root)).with_suffix("")): p for p in files}

    a = by_stem(files_a, input_a)
    b = by_stem(_images(input_b, "--Y_input_dir", recursive), input_b)
    summary = Summary("pairs")
    for stem in sorted(a.keys() ^ b.keys()):
        where = input_b if stem in a else input_a
        _warn(f"{(a.get(stem) or b.get(stem))}: no file with stem '{stem}' in {where}, skipped")
        summary.unmatched += 1
    common = sorted(a.keys() & b.keys())
    if not common:
        raise UserError(f"--X_input_dir={input_a} and --Y_input_dir={input_b} share no file stems")
    jobs = [(str(a[s]), lambda s=s: (load_image(a[s], _rel(a[s], input_a)), load_image(b[s], _rel(b[s], input_b))))
            for s in common]
    return _write("pairs", output, _shuffled(jobs, seed), num_shards=num_shards, workers=workers, summary=summary)


def build_tfds(name: str, split: str, output: str, *, data_dir: str | None = None, seed: int | None = 0,
               num_shards: int = 1, workers: int = 0) -> Summary:
    """One split of a TensorFlow Datasets image dataset (e.g. cycle_gan/horse2zebra, trainA)."""
    import tensorflow_datasets as tfds  # slow to import; only this path needs it

    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - tfds raises many kinds for a bad name
        raise UserError(f"--tfds_name={name}: {str(e).splitlines()[0][:200]}") from None
    if "image" not in builder.info.features:
        raise UserError(f"--tfds_name={name}: dataset has no 'image' feature")
    from tensorflow_datasets.core.download import downloader

    # tfds retries a failed download 10 times with exponential back-off (3.5 minutes); an offline
    # user should hear at once, and a real connection rarely needs more than two tries.
    downloader.MAX_RETRIES = min(getattr(downloader, "MAX_RETRIES", 2), 2)
    try:
        builder.download_and_prepare()
        ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    except ValueError as e:
        raise UserError(f"--tfds_split={split}: {str(e).splitlines()[0][:200]}") from None
    except Exception as e:  # noqa: BLE001 - network failures surface as many exception types
        raise UserError(f"--tfds_name={name}: the dataset could not be downloaded and is not in "
                        f"{builder.data_dir} ({type(e).__name__}); these machines may be offline") from None
    jobs: list[Job] = []
    for i, ex in enumerate(tfds.as_numpy(ds)):
        label = f"{name}/{split}[{i}]"
        jobs.append((label, lambda data=ex["image"], label=label: normalise(data, label)))
    return _write(split, output, _shuffled(jobs, seed), num_shards=num_shards, workers=workers or os.cpu_count() or 1)
