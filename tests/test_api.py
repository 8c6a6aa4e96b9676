"""The Python API: train, load a run's generators or an export, translate arrays and PIL images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cyclegan_tf import api
from cyclegan_tf.data import convert, synthetic
from cyclegan_tf.errors import UserError


def test_translate_with_a_run_and_with_its_export_agree(trained_run: Path, tmp_path: Path) -> None:
    G = api.load_generators(trained_run)["G"]
    photo = np.random.default_rng(0).integers(0, 256, (30, 45, 3), dtype=np.uint8)  # not a multiple of 4
    from_run = api.translate(G, photo)
    assert from_run.shape == photo.shape and from_run.dtype == np.uint8
    exported = api.load_export(api.export(trained_run, "XtoY", tmp_path / "x2y"))
    from_export = api.translate(exported, np.stack([photo, photo]))
    assert from_export.shape == (2, *photo.shape)
    assert np.abs(from_export[0].astype(int) - from_run).max() <= 1
    image = api.translate(exported, Image.fromarray(photo))
    assert isinstance(image, Image.Image) and image.size == (45, 30)
    with pytest.raises(UserError, match="expected"):
        api.translate(G, photo[..., :2])


def test_train_returns_the_run_folder(tmp_path: Path, monkeypatch) -> None:
    for d, seed in (("X", 0), ("Y", 1)):
        synthetic.write_folder(synthetic.textures(3, 36, seed), tmp_path / d)
        convert.build_folder(d, str(tmp_path / d), str(tmp_path / f"{d}.tfrecords"))
    monkeypatch.chdir(tmp_path)
    run = api.train(X="X.tfrecords", Y="Y.tfrecords", image_size=32, ngf=4, ndf=4, max_steps=2)
    assert run.parent == Path("checkpoints") and (run / "flags.json").exists()
    assert set(api.load_generators(run)) == {"G", "F"}
    with pytest.raises(UserError, match="not an option of --model=cycle_gan"):
        api.train(X="X.tfrecords", Y="Y.tfrecords", nce_T=0.07)


def test_translate_any_size_with_an_anti_aliased_generator() -> None:
    """CUT's G downsamples by blur pools, not strided convs: the padding must still reach a multiple of 4."""
    from cyclegan_tf import networks

    G = networks.define_G("resnet_6blocks", ngf=4, antialias=True, antialias_up=True)
    photo = np.random.default_rng(0).integers(0, 256, (33, 45, 3), dtype=np.uint8)
    assert api.translate(G, photo).shape == (33, 45, 3)
