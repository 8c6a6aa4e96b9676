import hashlib
import os
import shutil
from pathlib import Path

import pytest
import tensorflow as tf
from conftest import BAD_KINDS, GOOD_KINDS, write_bad, write_kind

from cyclegan_tf.data import convert, records
from cyclegan_tf.data.imagefiles import ImageRecord
from cyclegan_tf.errors import UserError


def read_examples(files: list[str]) -> list[dict]:
    out = []
    for raw in tf.data.TFRecordDataset(files):
        feats = tf.train.Example.FromString(raw.numpy()).features.feature
        out.append({k: (v.bytes_list.value or v.int64_list.value or v.float_list.value)[0] for k, v in feats.items()})
    return out


def test_every_kind_is_written_with_the_full_schema(image_folder, tmp_path: Path) -> None:
    folder = image_folder("X", n=len(GOOD_KINDS), kinds=GOOD_KINDS)
    mixed = r"not all of one kind: .*png_16bit_5.png is a 1-channel uint16.*--X_channels 1 or 3"
    with pytest.raises(UserError, match=mixed):
        convert.build_folder("X", str(folder), str(tmp_path / "x.tfrecords"), workers=2)  # 16-bit among 8-bit
    assert not (tmp_path / "x.tfrecords").exists()
    summary = convert.build_folder("X", str(folder), str(tmp_path / "x.tfrecords"), workers=2, channels=3)
    assert summary.written == len(GOOD_KINDS) and not summary.skipped and "converted to RGB" in summary.line()
    rows = read_examples([str(tmp_path / "x.tfrecords")])
    assert len(rows) == len(GOOD_KINDS)
    for row in rows:
        img = tf.io.decode_image(row["image/encoded_image"], channels=3, expand_animations=False).numpy()
        assert img.shape == (row["image/height"], row["image/width"], 3)
        assert row["image/format"] in (b"jpeg", b"png", b"bmp", b"gif")
        assert row["image/sha256"].decode() == hashlib.sha256(row["image/encoded_image"]).hexdigest()
    assert {r["image/file_name"].decode().split("_")[0] for r in rows} >= {"jpg", "webp", "TIFF"}


def test_bad_files_are_skipped_and_counted(image_folder, tmp_path: Path, capsys) -> None:
    folder = image_folder("X", n=2)
    for kind in BAD_KINDS:
        write_bad(folder, kind)
    summary = convert.build_folder("X", str(folder), str(tmp_path / "x.tfrecords"))
    assert summary.written == 2 and sum(summary.skipped.values()) == len(BAD_KINDS)
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == len(BAD_KINDS) and all("bad_" in w for w in warnings)
    assert "skipped 4" in summary.line()


def test_only_bad_files_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "X"
    folder.mkdir()
    write_bad(folder, "empty")
    with pytest.raises(UserError, match="no usable image"):
        convert.build_folder("X", str(folder), str(tmp_path / "x.tfrecords"))
    assert not list(tmp_path.glob("x.tfrecords*"))


@pytest.mark.parametrize("setup,match", [("missing", "no such folder"), ("empty", "no image files")])
def test_missing_or_empty_folder(tmp_path: Path, setup: str, match: str) -> None:
    if setup == "empty":
        (tmp_path / "X").mkdir()
    with pytest.raises(UserError, match=match):
        convert.build_folder("X", str(tmp_path / "X"), str(tmp_path / "x.tfrecords"), flag="--X_input_dir")


def test_unwritable_output(image_folder, tmp_path: Path) -> None:
    folder = image_folder("X", n=1)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    with pytest.raises(UserError, match="cannot create the folder"):
        convert.build_folder("X", str(folder), str(blocker / "x.tfrecords"))


def test_duplicates_are_stored_once(image_folder, tmp_path: Path) -> None:
    folder = image_folder("X", n=3)
    first = sorted(folder.iterdir())[0]
    shutil.copy(first, folder / "copy.jpg")
    summary = convert.build_folder("X", str(folder), str(tmp_path / "x.tfrecords"))
    assert summary.written == 3 and summary.duplicates == 1
    hashes = [r["image/sha256"] for r in read_examples([str(tmp_path / "x.tfrecords")])]
    assert len(set(hashes)) == 3


def test_shards_hold_everything_once(image_folder, tmp_path: Path) -> None:
    folder = image_folder("X", n=7)
    summary = convert.build_folder("X", str(folder), str(tmp_path / "x.tfrecords"), num_shards=3)
    assert [Path(f).name for f in summary.outputs] == [f"x.tfrecords-0000{i}-of-00003" for i in range(3)]
    files = records.resolve_files(str(tmp_path / "x.tfrecords"))
    assert files == summary.outputs and records.count_records(files) == 7
    names = sorted(r["image/file_name"] for r in read_examples(files))
    assert names == sorted(p.name.encode() for p in folder.iterdir())


def test_order_is_deterministic_for_a_seed(image_folder, tmp_path: Path) -> None:
    folder = image_folder("X", n=12)

    def names(seed: int | None, out: str) -> list[bytes]:
        convert.build_folder("X", str(folder), str(tmp_path / out), seed=seed, workers=2)
        return [r["image/file_name"] for r in read_examples([str(tmp_path / out)])]

    assert names(3, "a") == names(3, "b")
    assert names(3, "a") != names(4, "c")
    assert names(None, "d") == sorted(names(None, "d"))
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_write_is_atomic(tmp_path: Path) -> None:
    out = tmp_path / "x.tfrecords"
    records.write_records(str(out), [records.to_example(ImageRecord("a.png", b"png", 1, 1, "png", "0" * 64))])
    previous = out.read_bytes()

    def dying():
        yield b"one record"
        raise KeyboardInterrupt  # a user's Ctrl-C halfway through

    with pytest.raises(KeyboardInterrupt):
        records.write_records(str(out), dying())
    assert out.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["x.tfrecords"]


def test_paired_side_by_side(tmp_path: Path) -> None:
    folder = tmp_path / "AB"
    folder.mkdir()
    for i in range(3):
        write_kind(folder, "jpg", seed=i)  # 32 wide: A = left 16, B = right 16
    summary = convert.build_paired(str(folder), None, str(tmp_path / "p.tfrecords"))
    assert summary.written == 3
    for row in read_examples([str(tmp_path / "p.tfrecords")]):
        assert (row["image/width"], row["image_B/width"]) == (16, 16)
        assert row["image/file_name"] == row["image_B/file_name"]


def test_paired_by_stem_reports_mismatches(tmp_path: Path, capsys) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir(), b.mkdir()
    for i in range(3):
        write_kind(a, "jpg", seed=i)
        write_kind(b, "png_gray", seed=i).rename(b / f"jpg_{i}.png")
    write_kind(a, "bmp", seed=7)  # no partner
    summary = convert.build_paired(str(a), str(b), str(tmp_path / "p.tfrecords"))
    assert summary.written == 3 and summary.unmatched == 1
    assert "bmp_7" in capsys.readouterr().err
    rows = read_examples([str(tmp_path / "p.tfrecords")])
    assert all(r["image/file_name"].split(b".")[0] == r["image_B/file_name"].split(b".")[0] for r in rows)
    records.check_schema([str(tmp_path / "p.tfrecords")], paired=True)


def test_paired_with_no_common_stems(tmp_path: Path) -> None:
    a, b = tmp_path / "A", tmp_path / "B"
    a.mkdir(), b.mkdir()
    write_kind(a, "jpg", seed=1)
    write_kind(b, "jpg", seed=2)
    with pytest.raises(UserError, match="share no file stems"):
        convert.build_paired(str(a), str(b), str(tmp_path / "p.tfrecords"))


def test_tfds_with_mock_data(tmp_path: Path) -> None:
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=4):
        summary = convert.build_tfds("cycle_gan/horse2zebra", "trainA", str(tmp_path / "h.tfrecords"))
    assert summary.written == 4
    for row in read_examples([str(tmp_path / "h.tfrecords")]):
        img = tf.io.decode_image(row["image/encoded_image"], channels=3, expand_animations=False).numpy()
        assert img.shape == (row["image/height"], row["image/width"], 3)
        assert row["image/file_name"].startswith(b"cycle_gan/horse2zebra/trainA[")


def test_tfds_offline_is_a_one_line_error(tmp_path: Path, monkeypatch) -> None:
    # A proxy on a closed loopback port: the download fails as offline, and no packet leaves the machine.
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    with pytest.raises(UserError, match="could not be downloaded") as e:
        convert.build_tfds("cycle_gan/horse2zebra", "trainA", str(tmp_path / "h.tfrecords"),
                         data_dir=str(tmp_path / "tfds"))
    assert "\n" not in str(e.value)


def test_check_schema_rejects_foreign_records(tmp_path: Path) -> None:
    path = str(tmp_path / "foreign.tfrecords")
    ex = tf.train.Example(features=tf.train.Features(feature={
        "image/raw": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"x"]))}))
    with tf.io.TFRecordWriter(path) as w:
        w.write(ex.SerializeToString())
    with pytest.raises(UserError, match="lack image/encoded_image"):
        records.check_schema([path])
    (tmp_path / "junk.tfrecords").write_bytes(os.urandom(100))
    with pytest.raises(UserError, match="junk.tfrecords"):
        records.check_schema([str(tmp_path / "junk.tfrecords")])
    with pytest.raises(UserError, match="no such TFRecord"):
        records.resolve_files(str(tmp_path / "absent.tfrecords"))


def test_rebuilding_with_another_shard_layout_leaves_no_stale_files(image_folder, tmp_path: Path) -> None:
    folder = image_folder("X", n=5)
    out = str(tmp_path / "x.tfrecords")
    convert.build_folder("X", str(folder), out, num_shards=3)
    convert.build_folder("X", str(folder), out, num_shards=2)
    assert records.resolve_files(out) == [f"{out}-0000{i}-of-00002" for i in range(2)]
    convert.build_folder("X", str(folder), out)
    assert records.resolve_files(out) == [out] and sorted(p.name for p in tmp_path.glob("x.tfrecords*")) == [
        "x.tfrecords"]
