"""Any pixels in (data/pixels.py, imagefiles, convert): 16-bit PNG, TIFF pages and bands, .npy, ranges kept in
the records and the pipeline decoding each kind exactly."""
import io
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import tifffile
from PIL import Image

from cyclegan_tf.data import convert, pipeline, pixels, records
from cyclegan_tf.errors import UserError


def png16(path: Path, arr: np.ndarray) -> None:
    path.write_bytes(tf.io.encode_png(arr).numpy())


def decoded(path: str, kind: pixels.Kind) -> list[np.ndarray]:
    return [pipeline.decode(r, records.PREFIX_A, kind).numpy() for r in tf.data.TFRecordDataset(path)]


def build(folder: Path, out: Path, **kw) -> convert.Summary:
    return convert.build_folder("X", str(folder), str(out), seed=None, workers=2, **kw)


@pytest.mark.parametrize("shape", [(20, 24, 1), (20, 24, 3), (20, 24, 4)])
def test_16_bit_png_is_stored_and_decoded_exactly(tmp_path: Path, shape: tuple) -> None:
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 65536, shape).astype(np.uint16) for _ in range(3)]
    (tmp_path / "in").mkdir()
    for i, a in enumerate(arrays):
        png16(tmp_path / "in" / f"{i}.png", a)
    summary = build(tmp_path / "in", tmp_path / "x.tfr", value_range="full")
    kind = records.read_kind([str(tmp_path / "x.tfr")])
    assert kind == pixels.Kind(shape[-1], "uint16", (0.0,), (65535.0,))
    assert "0 values clipped" in summary.line()
    for a, b in zip(arrays, decoded(str(tmp_path / "x.tfr"), kind)):
        assert b.dtype == np.uint16 and np.array_equal(a, b)


def test_tiff_bands_pages_and_npy_arrays_are_stored_raw_and_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    bands = [rng.normal(0, 100, (16, 20, 6)).astype(np.float32) for _ in range(2)]
    for folder in ("tif", "pages", "npy"):
        (tmp_path / folder).mkdir()
    for i, a in enumerate(bands):
        tifffile.imwrite(tmp_path / "tif" / f"{i}.tif", a, photometric="minisblack", planarconfig="contig")
        tifffile.imwrite(tmp_path / "pages" / f"{i}.tif", np.moveaxis(a, -1, 0))  # one page per band
        np.save(tmp_path / "npy" / f"{i}.npy", a.astype(np.float64))  # float64 arrives as float32
    for folder in ("tif", "pages", "npy"):
        build(tmp_path / folder, tmp_path / f"{folder}.tfr", value_range="full")
        kind = records.read_kind([str(tmp_path / f"{folder}.tfr")])
        assert kind.channels == 6 and kind.dtype == "float32" and len(kind.lo) == 6
        for a, b in zip(bands, decoded(str(tmp_path / f"{folder}.tfr"), kind)):
            assert np.array_equal(a, b), folder


def test_int16_scans_keep_their_values_as_float32(tmp_path: Path) -> None:
    ct = np.random.default_rng(2).integers(-1024, 3000, (3, 16, 16)).astype(np.int16)
    (tmp_path / "ct").mkdir()
    for i, a in enumerate(ct):
        np.save(tmp_path / "ct" / f"{i}.npy", a)
    summary = build(tmp_path / "ct", tmp_path / "ct.tfr", value_range="-1000,2000")
    kind = records.read_kind([str(tmp_path / "ct.tfr")])
    assert kind == pixels.Kind(1, "float32", (-1000.0,), (2000.0,))
    clipped = int(np.count_nonzero((ct < -1000) | (ct > 2000)))
    assert f"{clipped} values clipped" in summary.line()
    for a, b in zip(ct, decoded(str(tmp_path / "ct.tfr"), kind)):
        assert np.array_equal(a, b[..., 0])  # stored as they are; the range only maps them to [-1, 1]


def test_auto_range_is_the_domains_percentiles(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    arrays = [rng.integers(100, 4000, (30, 30, 1)).astype(np.uint16) for _ in range(4)]
    arrays[0][0, 0] = 65000  # a hot pixel must not set the range
    (tmp_path / "in").mkdir()
    for i, a in enumerate(arrays):
        png16(tmp_path / "in" / f"{i}.png", a)
    build(tmp_path / "in", tmp_path / "x.tfr")  # 16-bit: auto by default
    kind = records.read_kind([str(tmp_path / "x.tfr")])
    values = np.sort(np.concatenate([a.ravel() for a in arrays]))
    lo, hi = values[int(np.ceil(0.005 * len(values))) - 1], values[int(np.ceil(0.995 * len(values))) - 1]
    assert kind.lo == (float(lo),) and kind.hi == (float(hi),) and kind.hi[0] < 4000


def test_pipeline_maps_the_range_to_unit_and_rgb_as_ever() -> None:
    x = tf.constant(np.arange(256, dtype=np.float32).reshape(16, 16, 1))
    assert np.array_equal(pixels.to_unit(x, pixels.RGB).numpy(), (x / 127.5 - 1.0).numpy())  # bit for bit
    kind = pixels.Kind(1, "uint16", (100.0,), (1100.0,))
    y = pixels.to_unit(tf.constant([[[50.0], [100.0], [600.0], [1100.0], [5000.0]]]), kind).numpy().ravel()
    np.testing.assert_allclose(y, [-1, -1, 0, 1, 1])
    back = pixels.from_unit(pixels.to_unit(tf.constant([[[123.0], [1099.0]]]), kind), kind).numpy().ravel()
    assert np.array_equal(np.round(back), [123, 1099])


def test_grey_pictures_stay_grey_and_a_colour_one_makes_the_domain_rgb(tmp_path: Path) -> None:
    (tmp_path / "grey").mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "grey" / f"{i}.jpg", quality=95)
    build(tmp_path / "grey", tmp_path / "g.tfr")
    kind = records.read_kind([str(tmp_path / "g.tfr")])
    assert kind == pixels.Kind(1, "uint8", (0.0,), (255.0,))
    assert decoded(str(tmp_path / "g.tfr"), kind)[0].shape == (8, 8, 1)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "grey" / "colour.png")
    summary = build(tmp_path / "grey", tmp_path / "c.tfr")
    assert records.read_kind([str(tmp_path / "c.tfr")]) == pixels.RGB and "3 converted to RGB" in summary.line()


def test_mixed_kinds_are_one_line_naming_a_file_of_each(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    png16(tmp_path / "in" / "one.png", np.zeros((8, 8, 1), np.uint16))
    png16(tmp_path / "in" / "three.png", np.zeros((8, 8, 3), np.uint16))
    with pytest.raises(UserError, match=r"not all of one kind: .*one.png is a 1-channel uint16; .*three.png is a "
                                        r"3-channel uint16") as e:
        build(tmp_path / "in", tmp_path / "x.tfr")
    assert "\n" not in str(e.value) and not (tmp_path / "x.tfr").exists()
    with pytest.raises(UserError, match="--X_channels=4: the images of .* have 1 channels"):
        png16(tmp_path / "in" / "three.png", np.zeros((8, 8, 1), np.uint16))
        build(tmp_path / "in", tmp_path / "x.tfr", channels=4)


def test_nan_and_unfit_values_are_skipped_with_one_line_each(tmp_path: Path, capsys) -> None:
    (tmp_path / "in").mkdir()
    good = np.ones((8, 8), np.float32)
    np.save(tmp_path / "in" / "good.npy", good)
    np.save(tmp_path / "in" / "nan.npy", np.where(np.eye(8) > 0, np.nan, good).astype(np.float32))
    np.save(tmp_path / "in" / "big_int.npy", np.full((8, 8), 2**25, np.int32))
    summary = build(tmp_path / "in", tmp_path / "x.tfr", value_range="0,2")
    err = capsys.readouterr().err
    assert summary.written == 1 and "nan.npy: skipped, 8 NaN or infinite values" in err
    assert "big_int.npy: skipped, int32 values beyond ±2^24" in err


@pytest.mark.parametrize("text,message", [("5,5", "lo must be below hi"), ("0,inf", "finite"), ("1", "not lo,hi"),
                                          ("0,1;0,2", "2 ranges for 3 channels"), ("", "give lo,hi")])
def test_bad_ranges_are_one_line(text: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        pixels.parse_range(text, 3, "--X_range")


def test_probe_reads_headers_of_every_format() -> None:
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.zeros((5, 6, 7), np.uint16), photometric="minisblack", planarconfig="contig")
    from cyclegan_tf.data.imagefiles import probe

    assert probe(buf.getvalue(), "x.tif") == probe(tf.io.encode_png(np.zeros((5, 6, 1), np.uint16)).numpy(), "") \
        .__class__(7, "uint16", False)
    jpeg = io.BytesIO()
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(jpeg, "JPEG")
    assert probe(jpeg.getvalue(), "x.jpg").picture
