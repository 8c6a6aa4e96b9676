from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from conftest import BAD_KINDS, GOOD_KINDS, write_bad, write_kind

from cyclegan_tf.data.imagefiles import BadImage, find_images, load_image, split_side_by_side


@pytest.mark.parametrize("kind", GOOD_KINDS)
def test_every_kind_decodes_to_three_channel_uint8(tmp_path: Path, kind: str) -> None:
    rec = load_image(write_kind(tmp_path, kind))
    img = tf.io.decode_image(rec.encoded, channels=3, expand_animations=False).numpy()
    assert img.dtype == np.uint8 and img.shape == (rec.height, rec.width, 3)
    assert img.std() > 5  # a picture, not a blank


@pytest.mark.parametrize("kind,fmt", [("jpg", "jpeg"), ("png_gray", "png"), ("bmp", "bmp"), ("gif", "gif")])
def test_native_formats_keep_their_bytes(tmp_path: Path, kind: str, fmt: str) -> None:
    path = write_kind(tmp_path, kind)
    rec = load_image(path)
    assert rec.format == fmt and rec.encoded == path.read_bytes()


@pytest.mark.parametrize("kind", ["webp", "tif", "jpg_cmyk", "jpg_exif_rotated"])
def test_others_become_lossless_png(tmp_path: Path, kind: str) -> None:
    path = write_kind(tmp_path, kind)
    rec = load_image(path)
    assert rec.format == "png" and rec.encoded[:8] == b"\x89PNG\r\n\x1a\n"


def test_webp_conversion_is_lossless(tmp_path: Path) -> None:
    path = write_kind(tmp_path, "webp")
    rec = load_image(path)
    from PIL import Image

    original = np.asarray(Image.open(path).convert("RGB"))
    assert np.array_equal(tf.io.decode_png(rec.encoded, channels=3).numpy(), original)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    rec = load_image(write_kind(tmp_path, "jpg_exif_rotated"))  # stored 32 wide, 24 high, orientation 6
    assert (rec.height, rec.width) == (32, 24)


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    rec = load_image(write_kind(tmp_path, "png_16bit"))
    img = tf.io.decode_image(rec.encoded, channels=3, expand_animations=False).numpy()
    assert img.max() > 200 and img.min() < 50


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_bad_files_raise_bad_image(tmp_path: Path, kind: str) -> None:
    with pytest.raises(BadImage):
        load_image(write_bad(tmp_path, kind))


def test_find_images_any_case_and_recursive(tmp_path: Path) -> None:
    for kind in ("jpg", "JPEG_upper", "png_rgba", "TIFF"):
        write_kind(tmp_path, kind)
    (tmp_path / "sub").mkdir()
    write_kind(tmp_path / "sub", "bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    assert len(find_images(tmp_path)) == 4
    found = find_images(tmp_path, recursive=True)
    assert len(found) == 5 and found == sorted(found, key=lambda p: p.relative_to(tmp_path).as_posix())


def test_split_side_by_side(tmp_path: Path) -> None:
    rec = load_image(write_kind(tmp_path, "png_rgba"))  # 32 wide: two 16-wide halves
    a, b = split_side_by_side(rec)
    full = tf.io.decode_image(rec.encoded, channels=3).numpy()
    assert np.array_equal(tf.io.decode_png(a.encoded).numpy(), full[:, :16])
    assert np.array_equal(tf.io.decode_png(b.encoded).numpy(), full[:, 16:])
