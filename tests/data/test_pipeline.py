from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cyclegan_tf.data import convert, pipeline, records, synthetic


@pytest.fixture(scope="module")
def domains(tmp_path_factory) -> dict:
    """X: 6 images 40×48, Y: 9 images 48×40, as TFRecords."""
    tmp = tmp_path_factory.mktemp("domains")
    out = {}
    for name, n, (h, w) in (("X", 6, (40, 48)), ("Y", 9, (48, 40))):
        imgs = synthetic.textures(n, 48, seed=len(name) + n)[:, :h, :w]
        synthetic.write_folder(np.ascontiguousarray(imgs), tmp / name, fmt="png")
        convert.build_folder(name, str(tmp / name), str(tmp / f"{name}.tfrecords"), seed=None)
        out[name] = records.resolve_files(str(tmp / f"{name}.tfrecords"))
    return out


def first(ds: tf.data.Dataset, n: int = 1) -> list:
    return [tf.nest.map_structure(lambda t: t.numpy(), b) for b in ds.take(n)]


@pytest.mark.parametrize("mode,shape", [
    ("resize_and_crop", (2, 24, 24, 3)),
    ("crop", (2, 24, 24, 3)),
    ("scale_width_and_crop", (2, 24, 24, 3)),
    ("scale_width", (1, 32, 36, 3)),   # width 36, height 36·40/48 = 30, raised to crop 32
    ("none", (1, 40, 48, 3)),
])
def test_modes_shape_and_range(domains: dict, mode: str, shape: tuple) -> None:
    cfg = pipeline.Preprocess(mode=mode, load_size=36, crop_size=24 if shape[1] == 24 else 32)
    ds = pipeline.domain_dataset(domains["X"], 6, batch_size=shape[0], cfg=cfg)
    (batch,) = first(ds)
    assert batch.shape == shape and batch.dtype == np.float32
    assert -1.0 <= batch.min() < -0.5 and 0.5 < batch.max() <= 1.0


def test_none_mode_rounds_to_multiple_of_4(tmp_path: Path) -> None:
    Image.fromarray(synthetic.textures(1, 64)[0][:30, :43]).save(tmp_path / "odd.png")
    convert.build_folder("X", str(tmp_path), str(tmp_path / "x.tfrecords"))
    (batch,) = first(pipeline.domain_dataset([str(tmp_path / "x.tfrecords")], 1, cfg=pipeline.Preprocess(mode="none")))
    assert batch.shape == (1, 32, 44, 3)


def test_variable_size_modes_refuse_batches(domains: dict) -> None:
    with pytest.raises(ValueError, match="batch_size 1"):
        pipeline.domain_dataset(domains["X"], 6, batch_size=2, cfg=pipeline.Preprocess(mode="none"))
    with pytest.raises(ValueError, match="choose one of"):
        pipeline.Preprocess(mode="zoom")


def test_values_match_the_stored_image(domains: dict) -> None:
    """mode none, no flip: the pipeline returns the stored pixels, scaled to [-1, 1]."""
    ds = pipeline.domain_dataset(domains["X"], 6, cfg=pipeline.Preprocess(mode="none", flip=False), repeat=False,
                             shuffle_buffer=1)
    stored = [tf.io.decode_png(r["image/encoded_image"]).numpy() for r in _examples(domains["X"])]
    got = [(b[0] + 1) * 127.5 for b in first(ds, 6)]
    assert len(got) == 6
    assert all(np.abs(g - s).max() < 1e-3 for g, s in zip(got, stored))


def _examples(files: list[str]) -> list[dict]:
    return [tf.io.parse_single_example(r, {"image/encoded_image": tf.io.FixedLenFeature([], tf.string)})
            for r in tf.data.TFRecordDataset(files)]


def test_flips_happen_about_half_the_time(domains: dict) -> None:
    cfg_flip = pipeline.Preprocess(mode="none", flip=True)
    cfg_keep = pipeline.Preprocess(mode="none", flip=False)
    flipped = first(pipeline.domain_dataset(domains["X"], 6, cfg=cfg_flip, seed=5), 60)
    kept = first(pipeline.domain_dataset(domains["X"], 6, cfg=cfg_keep, seed=5), 60)
    same_order = [np.array_equal(f, k) for f, k in zip(flipped, kept)]
    mirrored = [np.array_equal(f, k[:, :, ::-1]) for f, k in zip(flipped, kept)]
    assert all(s or m for s, m in zip(same_order, mirrored))
    assert 15 < sum(mirrored) < 45


def test_deterministic_for_a_seed_and_different_across_seeds(domains: dict) -> None:
    def run(seed: int) -> list:
        cfg = pipeline.Preprocess(load_size=36, crop_size=24)
        return first(pipeline.domain_dataset(domains["Y"], 9, batch_size=2, cfg=cfg, seed=seed), 8)

    a, b, c = run(1), run(1), run(2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not all(np.array_equal(p, q) for p, q in zip(a, c))


def test_every_epoch_is_a_permutation(domains: dict) -> None:
    cfg = pipeline.Preprocess(mode="none", flip=False)
    batches = first(pipeline.domain_dataset(domains["Y"], 9, cfg=cfg, seed=3), 18)
    keys = [b.tobytes() for b in batches]
    assert len(set(keys[:9])) == 9 and set(keys[:9]) == set(keys[9:])
    assert keys[:9] != keys[9:]  # reshuffled


def test_resume_continues_the_same_stream(domains: dict) -> None:
    cfg = pipeline.Preprocess(load_size=36, crop_size=24)
    full = first(pipeline.unpaired_dataset(domains["X"], 6, domains["Y"], 9, batch_size=2, cfg=cfg, seed=7), 12)
    resumed = first(pipeline.unpaired_dataset(domains["X"], 6, domains["Y"], 9, batch_size=2, cfg=cfg, seed=7,
                                          start_step=5), 7)
    for (fx, fy), (rx, ry) in zip(full[5:], resumed):
        assert np.array_equal(fx, rx) and np.array_equal(fy, ry)


def test_unpaired_domains_are_independent(domains: dict) -> None:
    cfg = pipeline.Preprocess(load_size=36, crop_size=24)
    (x, y), = first(pipeline.unpaired_dataset(domains["X"], 6, domains["Y"], 9, batch_size=3, cfg=cfg))
    assert x.shape == y.shape == (3, 24, 24, 3)
    assert pipeline.steps_per_epoch(6, 9, 2) == 5 and pipeline.steps_per_epoch(6, 9, 1) == 9


def test_paired_augmentation_is_shared(tmp_path: Path) -> None:
    img = synthetic.textures(1, 48)[0]
    Image.fromarray(np.concatenate([img, synthetic.colour_map(img)], axis=1)).save(tmp_path / "ab.png")
    convert.build_paired(str(tmp_path), None, str(tmp_path / "p.tfrecords"))
    ds = pipeline.domain_dataset([str(tmp_path / "p.tfrecords")], 1, batch_size=1, paired=True,
                             cfg=pipeline.Preprocess(load_size=48, crop_size=32))
    for a, b in first(ds, 6):
        expected = synthetic.colour_map(np.round((a[0] + 1) * 127.5).astype(np.uint8))
        assert np.abs(expected.astype(int) - np.round((b[0] + 1) * 127.5)).max() <= 2


def test_distributes_over_two_replicas(domains: dict) -> None:
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    cfg = pipeline.Preprocess(load_size=36, crop_size=24)
    ds = pipeline.unpaired_dataset(domains["X"], 6, domains["Y"], 9, batch_size=4, cfg=cfg)
    x, y = next(iter(strategy.experimental_distribute_dataset(ds)))
    parts = strategy.experimental_local_results(x)
    assert len(parts) == 2 and all(p.shape == (2, 24, 24, 3) for p in parts)


def _label_pair(folder: Path, labels_in: str, size: int = 40) -> str:
    """One pair: a palette label map (hard edges everywhere) in A or B, and a photo in the other."""
    from cyclegan_tf.data import shapescapes

    rng = np.random.default_rng(0)
    classes = rng.integers(0, 4, (size // 4, size // 4)).repeat(4, 0).repeat(4, 1)
    images = {"A": synthetic.textures(1, size)[0], "B": synthetic.textures(1, size)[0]}
    images[labels_in] = shapescapes.labels(classes)
    for side, img in images.items():
        (folder / side).mkdir()
        Image.fromarray(img).save(folder / side / "0.png")
    convert.build_paired(str(folder / "A"), str(folder / "B"), str(folder / "p.tfrecords"))
    return str(folder / "p.tfrecords")


@pytest.mark.parametrize("swap", [False, True])
def test_label_inputs_are_resized_nearest_neighbour(tmp_path: Path, swap: bool) -> None:
    """The input is A, or B with --direction BtoA (swap): that one is the label map."""
    from cyclegan_tf.data import shapescapes

    records_file = _label_pair(tmp_path, "B" if swap else "A")
    palette = {tuple(c) for c in shapescapes.PALETTE}

    def colours(labels: bool) -> set:
        cfg = pipeline.Preprocess(load_size=57, crop_size=48, labels=3 if labels else 0)  # channels of the label map
        (x, _), = first(pipeline.paired_dataset([records_file], 1, cfg=cfg, swap=swap))
        return {tuple(c) for c in np.round((x[0] + 1) * 127.5).astype(int).reshape(-1, 3)}

    assert colours(labels=True) <= palette  # only the classes' own colours: no class is invented
    assert not colours(labels=False) <= palette  # bicubic blends them (what the option is for)


def test_variable_sizes_round_to_the_generators_multiple(tmp_path: Path) -> None:
    synthetic.write_folder(synthetic.textures(1, 48)[:, :36, :44].copy(), tmp_path / "x", fmt="png")
    convert.build_folder("x", str(tmp_path / "x"), str(tmp_path / "x.tfrecords"), seed=None)
    cfg = pipeline.Preprocess(mode="none", multiple=16)
    (batch,) = first(pipeline.domain_dataset([str(tmp_path / "x.tfrecords")], 1, cfg=cfg))
    assert batch.shape == (1, 32, 48, 3)  # the nearest multiples of 16: 36 → 32, 44 → 48
