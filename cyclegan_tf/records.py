"""The TFRecord schema, and atomic writing of record files.

Each record is a `tf.train.Example` with vanhuyz's keys, so readers written for his TFRecords work:
  image/file_name (bytes), image/encoded_image (the image file's bytes),
plus image/height, image/width (int64), image/format (b"jpeg"|b"png"|b"bmp"|b"gif") and
image/sha256 (hex digest of image/encoded_image). Paired records (pix2pix) carry the same keys for
image A and, under the prefix `image_B/`, for image B.
"""
from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable
from pathlib import Path

import tensorflow as tf

from cyclegan_tf.errors import UserError
from cyclegan_tf.imagefiles import ImageRecord

PREFIX_A = "image/"
PREFIX_B = "image_B/"
ENCODED = "encoded_image"
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")


def _bytes(v: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def _int(v: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))


def _features(r: ImageRecord, prefix: str) -> dict[str, tf.train.Feature]:
    return {
        prefix + "file_name": _bytes(r.file_name.encode()),
        prefix + ENCODED: _bytes(r.encoded),
        prefix + "height": _int(r.height),
        prefix + "width": _int(r.width),
        prefix + "format": _bytes(r.format.encode()),
        prefix + "sha256": _bytes(r.sha256.encode()),
    }


def to_example(a: ImageRecord, b: ImageRecord | None = None) -> bytes:
    """A serialised Example for one image, or for an (A, B) pair."""
    feats = _features(a, PREFIX_A)
    if b is not None:
        feats.update(_features(b, PREFIX_B))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def shard_names(path: str, num_shards: int) -> list[str]:
    if num_shards <= 1:
        return [path]
    return [f"{path}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def write_records(path: str, examples: Iterable[bytes], num_shards: int = 1) -> list[str]:
    """Writes serialised examples round-robin into `num_shards` files; returns the final names.

    Everything goes to temporary names first and is renamed at the end, so a killed run never leaves
    a half-written file under a final name.
    """
    finals = shard_names(path, num_shards)
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder of {path}: {e.strerror}") from None
    if not os.access(parent, os.W_OK):
        raise UserError(f"cannot write {path}: folder {parent} is not writable")
    temps = [f"{f}.tmp-{os.getpid()}" for f in finals]
    writers = [tf.io.TFRecordWriter(t) for t in temps]
    try:
        for i, ex in enumerate(examples):
            writers[i % len(writers)].write(ex)
        for w in writers:
            w.close()
        for t, f in zip(temps, finals):
            os.replace(t, f)
        # A previous build with another shard layout must not be read back with this one.
        for stale in [path, *glob.glob(glob.escape(path) + "-?????-of-?????")]:
            if stale not in finals and os.path.isfile(stale):
                os.remove(stale)
    finally:
        for w in writers:
            w.close()
        for t in temps:
            if os.path.exists(t):
                os.remove(t)
    return finals


def resolve_files(path: str) -> list[str]:
    """Record files for a path: a file, a glob, or the base name of `-NNNNN-of-NNNNN` shards."""
    if os.path.isfile(path):
        return [path]
    files = sorted(glob.glob(path)) or sorted(glob.glob(glob.escape(path) + "-?????-of-?????"))
    files = [f for f in files if os.path.isfile(f) and ".tmp-" not in f]
    if not files:
        raise UserError(f"{path}: no such TFRecord file (or shards {path}-NNNNN-of-NNNNN)")
    return files


def check_schema(files: list[str], paired: bool = False) -> None:
    """Reads the first record of each file and checks it holds our keys; one-line error if not."""
    needed = [PREFIX_A + ENCODED] + ([PREFIX_B + ENCODED] if paired else [])
    for f in files:
        try:
            first = next(iter(tf.data.TFRecordDataset(f).take(1)), None)
        except tf.errors.OpError as e:
            raise UserError(f"{f}: not a readable TFRecord file ({e.message.splitlines()[0]})") from None
        if first is None:
            raise UserError(f"{f}: holds no records")
        try:
            keys = tf.train.Example.FromString(first.numpy()).features.feature.keys()
        except Exception:  # noqa: BLE001 - any protobuf failure means the same thing to the user
            raise UserError(f"{f}: records are not tf.train.Example protos") from None
        missing = [k for k in needed if k not in keys]
        if missing:
            raise UserError(f"{f}: records lack {', '.join(missing)} (build them with build_data.py"
                            f"{' --paired' if paired else ''})")


def count_records(files: list[str]) -> int:
    """Number of records in `files`, read once (the epoch length is derived from it)."""
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 8))
    try:
        return int(ds.reduce(tf.constant(0, tf.int64), tf.autograph.experimental.do_not_convert(lambda n, _: n + 1)))
    except tf.errors.OpError as e:
        raise UserError(f"{files[0]}: corrupt TFRecord data ({e.message.splitlines()[0]})") from None
