"""The TFRecord schema, and atomic writing of record files.

Each record is a `tf.train.Example` with vanhuyz's keys, so readers written for his TFRecords work:
  image/file_name (bytes), image/encoded_image (the image file's bytes),
plus image/height, image/width (int64), image/format (b"jpeg"|b"png"|b"bmp"|b"gif"|b"raw") and
image/sha256 (hex digest of image/encoded_image), and the domain's pixels (data/pixels.py): image/channels
(int64), image/dtype (b"uint8"|b"uint16"|b"float32") and image/range_lo, image/range_hi (floats, one or one
per channel). "raw" is the array's little-endian bytes, height × width × channels. Records without the
pixel keys (written before them) are 3-channel uint8 in [0, 255]. Paired records (pix2pix) carry the same
keys for image A and, under the prefix `image_B/`, for image B.
"""
from __future__ import annotations

import contextlib
import glob
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from cyclegan_tf.atomic import remove_stale, temp_name, uninterrupted
from cyclegan_tf.data.imagefiles import ImageRecord
from cyclegan_tf.data.pixels import DTYPES, MAX_CHANNELS, RGB, Kind
from cyclegan_tf.errors import UserError, disk_failure, one_line

PREFIX_A = "image/"
PREFIX_B = "image_B/"
ENCODED = "encoded_image"
_SHARD = re.compile(r"-\d{5}-of-\d{5}$")
MAX_SHARDS = 99_999  # the -NNNNN-of-NNNNN names have five digits


def _bytes(v: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def _int(v: int) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[v]))


def _floats(v: tuple[float, ...]) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(v)))


def _features(r: ImageRecord, prefix: str, kind: Kind) -> dict[str, tf.train.Feature]:
    return {
        prefix + "file_name": _bytes(os.fsencode(r.file_name)),  # a name that is not UTF-8 keeps its bytes
        prefix + ENCODED: _bytes(r.encoded),
        prefix + "height": _int(r.height),
        prefix + "width": _int(r.width),
        prefix + "format": _bytes(r.format.encode()),
        prefix + "sha256": _bytes(r.sha256.encode()),
        prefix + "channels": _int(kind.channels),
        prefix + "dtype": _bytes(kind.dtype.encode()),
        prefix + "range_lo": _floats(kind.lo),
        prefix + "range_hi": _floats(kind.hi),
    }


def to_example(a: ImageRecord, b: ImageRecord | None = None, kinds: tuple[Kind, ...] = (RGB, RGB)) -> bytes:
    """A serialised Example for one image, or for an (A, B) pair, with their domains' kinds."""
    feats = _features(a, PREFIX_A, kinds[0])
    if b is not None:
        feats.update(_features(b, PREFIX_B, kinds[-1]))
    return tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString()


def shard_names(path: str, num_shards: int) -> list[str]:
    if num_shards <= 1:
        return [path]
    return [f"{path}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


def shared_file(a: str, b: str, num_shards: int = 1) -> str | None:
    """A file that output `a` writes and output `b` writes or deletes (or the reverse); None if they are apart.

    A commit deletes its base name and its -NNNNN-of-NNNNN shards of another layout, so those count too.
    Paths are compared resolved: `out/x`, `./out/x` and a symlinked folder are one file.
    """
    def finals(path: str) -> set[str]:
        return {os.path.realpath(f) for f in shard_names(path, num_shards)}

    def touched_by(path: str, f: str) -> bool:
        base = os.path.realpath(path)
        return f == base or (f.startswith(base) and _SHARD.fullmatch(f[len(base):]) is not None)

    hits = {f for f in finals(b) if touched_by(a, f)} | {f for f in finals(a) if touched_by(b, f)}
    return min(hits) if hits else None


@dataclass
class Staged:
    """Record files written under temporary names, invisible to readers until `commit`."""

    path: str
    finals: list[str]
    temps: list[str]
    created: list[Path] = field(default_factory=list)  # folders made for them, deepest first


def _make_folder(folder: Path, path: str) -> list[Path]:
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the folder of {path}: {e.strerror}") from None
    return missing


def prepare_output(path: str, num_shards: int = 1) -> Staged:
    """Checks `path` can be written (one-line error if not), makes its folder and clears dead runs' temporaries.

    Nothing is written yet: both outputs of a build are prepared before either is filled.
    """
    finals = shard_names(path, num_shards)
    for f in finals:
        if os.path.isdir(f):
            raise UserError(f"{f}: is a folder, not a record file")
    for f in [*finals, path, *glob.glob(glob.escape(path) + "-?????-of-?????")]:
        if os.path.isfile(f) and not _ours(f):
            raise UserError(f"{f}: exists and is not a record file of build_data.py; nothing was changed "
                            "(move it away or choose another output name)")
    parent = Path(path).parent
    created = _make_folder(parent, path)
    if not os.access(parent, os.W_OK):
        _remove_folders(created)
        raise UserError(f"cannot write {path}: folder {parent} is not writable")
    remove_stale(path, *finals)  # a killed run cannot clean up after itself; we are the next run
    return Staged(path, finals, [str(temp_name(f)) for f in finals], created)


def _ours(path: str) -> bool:
    """Whether a file we would replace or delete holds our records (or nothing): never a user's other file."""
    if os.path.getsize(path) == 0:
        return True
    try:
        check_schema([path])
    except UserError:
        return False
    return True


def _disk_error(e: tf.errors.OpError, staged: Staged) -> Exception:
    """TensorFlow's write failure as an error naming the final file (our temporary name means nothing to users)."""
    message = one_line(e.message)
    final = next((f for t, f in zip(staged.temps, staged.finals) if t in message), staged.path)
    return disk_failure(e, final) or UserError(f"cannot write {final}: {message}")


def write_staged(staged: Staged, examples: Iterable[bytes]) -> None:
    """Writes serialised examples round-robin into the temporary files of `staged`."""
    writers: list[tf.io.TFRecordWriter] = []
    try:
        # fsencode: an output name that is not UTF-8 stays the user's bytes (TensorFlow would reject it).
        writers = [tf.io.TFRecordWriter(os.fsencode(t)) for t in staged.temps]
        for i, ex in enumerate(examples):
            writers[i % len(writers)].write(ex)
        for w in writers:
            w.close()
    except tf.errors.OpError as e:
        raise _disk_error(e, staged) from None
    finally:
        for w in writers:  # already closed unless something failed, and then the temporaries go anyway
            with contextlib.suppress(tf.errors.OpError):
                w.close()


def commit(staged: list[Staged]) -> None:
    """Renames every staged file to its final name, then removes the files of a previous shard layout."""
    finals = {f for s in staged for f in s.finals}
    with uninterrupted():
        for s in staged:
            for t, f in zip(s.temps, s.finals):
                os.replace(t, f)
        # A previous build with another shard layout must not be read back with this one.
        for s in staged:
            for stale in [s.path, *glob.glob(glob.escape(s.path) + "-?????-of-?????")]:
                if stale not in finals and os.path.isfile(stale):
                    os.remove(stale)


def _remove_folders(folders: list[Path]) -> None:
    for folder in folders:  # deepest first; stops at the first one someone else put a file in
        try:
            folder.rmdir()
        except OSError:
            return


def discard(staged: list[Staged]) -> None:
    """Removes the temporary files (and the folders made for them) of staged outputs that are not committed."""
    for s in staged:
        for t in s.temps:
            with contextlib.suppress(OSError):  # the error that brought us here matters more than this one
                os.remove(t)
    for s in reversed(staged):
        _remove_folders(s.created)


def write_records(path: str, examples: Iterable[bytes], num_shards: int = 1) -> list[str]:
    """Writes serialised examples round-robin into `num_shards` files; returns the final names.

    Everything goes to temporary names first and is renamed at the end, so a killed run never leaves
    a half-written file under a final name.
    """
    staged = prepare_output(path, num_shards)
    try:
        write_staged(staged, examples)
        commit([staged])
    except BaseException:
        discard([staged])
        raise
    return staged.finals


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
            raise UserError(f"{f}: not a readable TFRecord file ({one_line(e.message)})") from None
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
    """Number of records in `files`, read once."""
    return survey(files).count


@dataclass(frozen=True)
class Survey:
    """What the records' own keys say about a domain's images, without decoding one: for the data doctor's
    short form at the start of train.py."""

    count: int
    short_sides: np.ndarray  # [count] the smaller of each image's height and width
    sha256: np.ndarray  # [count] each encoded image's hash (bytes)


def survey(files: list[str], prefix: str = PREFIX_A) -> Survey:
    """Counts the records of `files` and reads each image's size and hash under `prefix` (one pass, as
    count_records); records written before a key existed give 0 and b""."""
    spec = {prefix + "height": tf.io.FixedLenFeature([], tf.int64, 0),
            prefix + "width": tf.io.FixedLenFeature([], tf.int64, 0),
            prefix + "sha256": tf.io.FixedLenFeature([], tf.string, b"")}
    ds = tf.data.TFRecordDataset(files, num_parallel_reads=min(len(files), 8)).batch(4096)
    ds = ds.map(lambda raw: tf.io.parse_example(raw, spec))
    sides, hashes = [], []
    try:
        for batch in ds.as_numpy_iterator():
            sides.append(np.minimum(batch[prefix + "height"], batch[prefix + "width"]))
            hashes.append(batch[prefix + "sha256"])
    except tf.errors.OpError as e:
        raise UserError(f"{files[0]}: corrupt TFRecord data ({one_line(e.message)})") from None
    sides_all = np.concatenate(sides) if sides else np.zeros([0], np.int64)
    return Survey(len(sides_all), sides_all, np.concatenate(hashes) if hashes else np.zeros([0], object))


def _kind_of(example: tf.train.Example, prefix: str, path: str) -> Kind:
    f = example.features.feature
    if prefix + "channels" not in f:
        return RGB
    try:
        kind = Kind(int(f[prefix + "channels"].int64_list.value[0]), f[prefix + "dtype"].bytes_list.value[0].decode(),
                    tuple(f[prefix + "range_lo"].float_list.value), tuple(f[prefix + "range_hi"].float_list.value))
    except (IndexError, KeyError, UnicodeDecodeError):
        raise UserError(f"{path}: records carry damaged pixel keys ({prefix}channels, dtype, range)") from None
    if kind.dtype not in DTYPES or not 1 <= kind.channels <= MAX_CHANNELS or len(kind.lo) not in (1, kind.channels) \
            or len(kind.lo) != len(kind.hi) or any(a >= b for a, b in zip(kind.lo, kind.hi)):
        raise UserError(f"{path}: records carry a kind this version cannot read ({kind.describe()})")
    return kind


def read_kind(files: list[str], prefix: str = PREFIX_A) -> Kind:
    """The pixels of the domain stored in `files` under `prefix`, from each file's first record; one line if
    the files disagree (shards of different builds)."""
    kinds = {}
    for f in files:
        first = next(iter(tf.data.TFRecordDataset(f).take(1)), None)
        if first is not None:
            kinds[f] = _kind_of(tf.train.Example.FromString(first.numpy()), prefix, f)
    if len(set(kinds.values())) > 1:
        (a, ka), (b, kb) = next(iter(kinds.items())), next((f, k) for f, k in kinds.items() if k != kinds[files[0]])
        raise UserError(f"{a} holds {ka.describe()} images but {b} {kb.describe()}: one domain, one kind "
                        "(build them again together)")
    return next(iter(kinds.values()), RGB)
