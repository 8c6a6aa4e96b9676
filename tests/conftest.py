"""Shared fixtures: real image files of every kind a user may have, made on the fly."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan_tf.console import without_start_up_chatter  # noqa: E402

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# pytest holds what is written while it loads this file and prints it after its summary: TensorFlow's
# start-up chatter (no GPU, cuInit) must not be the last thing a newcomer reads.
with without_start_up_chatter():
    import tensorflow as tf

    # Two logical CPUs, so MirroredStrategy runs with two replicas on a machine without GPUs.
    # This must happen before TensorFlow initialises its devices, hence at import of the conftest.
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    tf.constant(0)  # initialises the devices (the cuInit failure is printed here)
ROOT = Path(__file__).resolve().parents[1]


def _rgb(h: int = 24, w: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Smooth gradients plus noise: compresses like a photo, and every image differs.
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, (xx + yy) * 127 / (h + w)], -1)
    return np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)


def write_kind(folder: Path, kind: str, seed: int = 0) -> Path:
    """Writes one image of `kind` into folder; returns its path."""
    rgb = _rgb(seed=seed)
    img = Image.fromarray(rgb)
    p = folder / f"{kind}_{seed}"
    if kind == "jpg":
        img.save(p.with_suffix(".jpg"), quality=95)
    elif kind == "JPEG_upper":
        img.save(p.with_suffix(".JPEG"), format="JPEG")
    elif kind == "png_gray":
        img.convert("L").save(p.with_suffix(".png"))
    elif kind == "png_palette":
        img.convert("P", palette=Image.ADAPTIVE).save(p.with_suffix(".png"))
    elif kind == "png_rgba":
        Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)])).save(p.with_suffix(".Png"))
    elif kind == "png_16bit":
        Image.fromarray(rgb[..., 0].astype(np.uint16) * 257).save(p.with_suffix(".png"))
    elif kind == "jpg_cmyk":
        img.convert("CMYK").save(p.with_suffix(".jpg"), quality=95)
    elif kind == "jpg_exif_rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # the camera was turned 90°: viewers rotate it clockwise
        img.save(p.with_suffix(".jpg"), exif=exif.tobytes(), quality=95)
    elif kind == "bmp":
        img.save(p.with_suffix(".bmp"))
    elif kind == "gif":
        img.convert("P").save(p.with_suffix(".gif"))
    elif kind == "webp":
        img.save(p.with_suffix(".webp"), lossless=True)
    elif kind in ("tif", "TIFF"):
        img.save(p.with_suffix("." + kind))
    else:
        raise ValueError(kind)
    return next(folder.glob(p.name + ".*"))


GOOD_KINDS = ("jpg", "JPEG_upper", "png_gray", "png_palette", "png_rgba", "png_16bit", "jpg_cmyk",
              "jpg_exif_rotated", "bmp", "gif", "webp", "tif", "TIFF")


def write_bad(folder: Path, kind: str) -> Path:
    good = write_kind(folder, "png_gray" if kind == "unreadable" else "jpg", seed=99)
    data = good.read_bytes()
    p = folder / f"bad_{kind}{good.suffix}"
    good.unlink()
    if kind == "empty":
        p.write_bytes(b"")
    elif kind == "truncated":
        p.write_bytes(data[: len(data) // 2])
    elif kind == "not_an_image":
        p.write_text("this is a text file with an image extension\n")
    elif kind == "unreadable":  # a real PNG header whose pixel data is garbage
        p.write_bytes(data[:60] + bytes(np.random.default_rng(0).integers(0, 256, len(data) - 60, np.uint8)))
    else:
        raise ValueError(kind)
    return p


BAD_KINDS = ("empty", "truncated", "not_an_image", "unreadable")


@pytest.fixture
def image_folder(tmp_path: Path):
    """A folder factory: image_folder(name, n=.., kinds=..)."""

    def make(name: str, n: int = 4, kinds: tuple[str, ...] = ("jpg",), seed: int = 0) -> Path:
        folder = tmp_path / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            write_kind(folder, kinds[i % len(kinds)], seed=seed + i)
        return folder

    return make


def texture_records(folder: Path, n: int) -> dict[str, str]:
    """X and Y records of n synthetic 40 px textures each (different seeds): {"X": path, "Y": path}."""
    from cyclegan_tf.data import convert, synthetic

    for d, seed in (("X", 0), ("Y", 1)):
        synthetic.write_folder(synthetic.textures(n, 40, seed), folder / d)
        convert.build_folder(d, str(folder / d), str(folder / f"{d}.tfrecords"))
    return {d: str(folder / f"{d}.tfrecords") for d in ("X", "Y")}


def shapescapes_pairs(folder: Path, size: int, train: int, test: int) -> dict:
    """Paired ShapeScapes (A: label maps, B: photos): {"records": the training pairs' TFRecord file, "data":
    the folder with trainA/B and the paired test split testA/B}."""
    from cyclegan_tf.data import convert, shapescapes

    shapescapes.generate(folder / "ss", size=size, train=train, test=test, seed=0, paired=True)
    convert.build_paired(str(folder / "ss" / "trainA"), str(folder / "ss" / "trainB"), str(folder / "pairs.tfrecords"))
    return {"records": str(folder / "pairs.tfrecords"), "data": folder / "ss"}


def scene_records(folder: Path, size: int = 32) -> dict[str, str]:
    """The learning tests' unpaired data: X = 64 textured scenes, Y = label maps of 64 other scenes."""
    from cyclegan_tf.data import convert, synthetic

    _, photos = synthetic.scenes(64, size, seed=1)
    labels, _ = synthetic.scenes(64, size, seed=2)
    synthetic.write_folder(photos, folder / "X", fmt="png")
    synthetic.write_folder(labels, folder / "Y", fmt="png")
    for d in ("X", "Y"):
        convert.build_folder(d, str(folder / d), str(folder / f"{d}.tfrecords"))
    return {d: str(folder / f"{d}.tfrecords") for d in ("X", "Y")}


def photo_to_labels_error(G, size: int = 32) -> tuple[float, float]:
    """Mean |G(x) − true label map| on 32 held-out scenes, and the identity mapping's."""
    from cyclegan_tf.data import synthetic

    truth, x = (a.astype(np.float32) / 127.5 - 1 for a in synthetic.scenes(32, size, seed=3))
    return float(np.abs(G(x, training=False).numpy() - truth).mean()), float(np.abs(x - truth).mean())


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """A tiny CycleGAN run folder (32 px, ngf 4, 3 steps): real checkpoints for export and inference."""
    from cyclegan_tf.config import TrainConfig
    from cyclegan_tf.training.loop import train

    tmp = tmp_path_factory.mktemp("trained")
    cfg = TrainConfig(**texture_records(tmp, 4), checkpoint_dir=str(tmp / "run"),
                      image_size=32, load_size=36, netG="resnet_6blocks", ngf=4, ndf=4, max_steps=3)
    assert train(cfg) == 0
    return tmp / "run"


def event_tags(folder: Path) -> dict[str, int]:
    """How many values each TensorBoard tag has in a run folder's event files."""
    tags: dict[str, int] = {}
    for f in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(f)):
            for v in event.summary.value:
                tags[v.tag] = tags.get(v.tag, 0) + 1
    return tags


# ISAs without bf16/fp16 convolutions. TensorFlow picks oneDNN's half-precision kernels from the CPU's own
# flags, which ONEDNN_MAX_CPU_ISA does not change, and oneDNN capped below them aborts the process; a real
# AVX2 CPU is not offered those kernels at all (TensorFlow falls back to Eigen's), so there is nothing to see.
_NO_HALF_PRECISION_ISAS = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX512_CORE", "AVX512_CORE_VNNI"}


def pytest_collection_modifyitems(config, items) -> None:
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if isa in _NO_HALF_PRECISION_ISAS:
        skip = pytest.mark.skip(reason=f"ONEDNN_MAX_CPU_ISA={isa} has no half-precision convolutions "
                                       "(TensorFlow would still ask for them on this CPU)")
        for item in items:
            if "half_precision" in item.keywords:
                item.add_marker(skip)
