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

from tqdm import tqdm

from cyclegan_tf.data.imagefiles import BadImage, ImageRecord, find_images, load_image, normalise, split_side_by_side
from cyclegan_tf.errors import UserError, disk_failure, one_line

if TYPE_CHECKING:
    import tensorflow as tf

    from cyclegan_tf.data import records

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

    summary, jobs = Summary(plan.name, unmatched=plan.unmatched), plan.jobs
    start = time.perf_counter()
    seen: dict[str, str] = {}
    bar = tqdm(total=len(jobs), desc=plan.name, unit="img", disable=not sys.stderr.isatty(), file=sys.stderr)

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


def _images(folder: str, flag: str, recursive: bool) -> list[Path]:
    if not folder:
        raise UserError(f"{flag} is required")
    if not os.path.isdir(folder):
        raise UserError(f"{flag}={folder}: no such folder")
    files = find_images(folder, recursive, broken_links=True)
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


def plan_folder(name: str, input_dir: str, output: str, *, flag: str = "--input_dir", output_flag: str = "output",
                recursive: bool = False, seed: int | None = 0) -> Plan:
    """One domain: every image under `input_dir` (shuffled with `seed`; None keeps order). Reads no image yet."""
    files = _images(input_dir, flag, recursive)
    jobs: list[Job] = [(str(p), lambda p=p: load_image(p, _rel(p, input_dir))) for p in files]
    return Plan(name, output, _shuffled(jobs, seed), f"{flag}={input_dir}", output_flag)


def build_folder(name: str, input_dir: str, output: str, *, flag: str = "--input_dir", recursive: bool = False,
                 seed: int | None = 0, num_shards: int = 1, workers: int = 0) -> Summary:
    """One domain: every image under `input_dir` into `output` (shuffled with `seed`; None keeps order)."""
    plan = plan_folder(name, input_dir, output, flag=flag, recursive=recursive, seed=seed)
    return build_all([plan], num_shards=num_shards, workers=workers)[0]


def plan_paired(input_a: str, input_b: str | None, output: str, *, output_flag: str = "--output_file",
                recursive: bool = False, seed: int | None = 0) -> Plan:
    """Pairs for pix2pix: one folder of side-by-side A|B images, or two folders matched by file stem."""
    files_a = _images(input_a, "--X_input_dir", recursive)
    if not input_b:
        jobs: list[Job] = [(str(p), lambda p=p: split_side_by_side(load_image(p, _rel(p, input_a))))
                           for p in files_a]
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
    jobs = [(str(a[s]), lambda s=s: (load_image(a[s], _rel(a[s], input_a)), load_image(b[s], _rel(b[s], input_b))))
            for s in common]
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
    are: a grey image (MNIST's 28×28×1 PNG) stays a grey PNG, which every reader decodes with
    channels=3, so the pipeline sees RGB with the grey value in all three channels.
    """
    import tensorflow_datasets as tfds

    opened = [_open_tfds(s, data_dir) for s in splits]
    plans = []
    for s, ds in zip(splits, opened):
        jobs: list[Job] = []
        for i, ex in enumerate(tfds.as_numpy(ds)):
            label = f"{s.name}/{s.split}[{i}]"
            jobs.append((label, lambda data=ex["image"], label=label: normalise(data, label)))
        source = s.given or f"--tfds_split={s.split}"
        if not jobs:
            raise UserError(f"{source}: the split holds no images")
        plans.append(Plan(s.plan or s.split, s.output, _shuffled(jobs, seed), source, s.output_flag))
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
