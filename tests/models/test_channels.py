"""Every model with 1 and 4 channels (issue: any pixels): networks on the right channels, a step that trains,
pools and previews of those shapes, and one line for what cannot apply."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import models
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.errors import UserError
from cyclegan_tf.training.loop import _grid

TINY = dict(image_size=32, netG="resnet_6blocks", ngf=4, ndf=4, seed=1)


def configured(name: str, x: int, y: int, **options) -> TrainConfig:
    cls = models.get(name)
    paired = dict(X="pairs") if cls.paired else dict(X="x", Y="y")
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    common = {**TINY, **{k: v for k, v in options.items() if k in names}}
    cfg = TrainConfig(model=name, **paired, **common, input_nc=x, output_nc=y, X_dtype="uint16", Y_dtype="float32",
                      X_range="0,4095", Y_range="-1,1" if y == 1 else ";".join(["-1,1"] * y),
                      extra={k: v for k, v in options.items() if k not in names})
    cfg = cls.configure(cfg, set(common)).resolved()
    cls.validate(cfg)
    return cfg


def images(n: int, c: int, seed: int) -> tf.Tensor:
    return tf.random.stateless_uniform([n, 32, 32, c], [seed, 0], -1, 1)


@pytest.mark.parametrize("name,x,y,options", [
    ("cycle_gan", 1, 4, dict(lambda_identity=0.0)),
    ("cycle_gan", 4, 4, {}),
    ("pix2pix", 1, 4, dict(netG="resnet_6blocks")),
    ("pix2pixhd", 4, 1, dict(netG="global", no_vgg_loss=True)),
    ("cut", 1, 1, dict(num_patches=8)),
    ("cut", 4, 4, dict(num_patches=8, nce_idt=False)),
])
def test_a_step_trains_on_these_channels(name: str, x: int, y: int, options: dict) -> None:
    cfg = configured(name, x, y, **options)
    model = models.get(name)(cfg, steps_per_epoch=10, global_batch=2)
    for g, (c_in, c_out) in {"G": (x, y), "F": (y, x)}.items():
        if g in model.nets:
            assert model.nets[g].input_shape[-1] in (c_in, getattr(cfg, "label_nc", 0))
            assert model.nets[g].output_shape[-1] == c_out
    loss = model.make_train_step(tf.distribute.get_strategy())(images(2, x, 1), images(2, y, 2))
    assert bool(loss["finite"])
    for tag, row in model.previews(images(1, x, 3), images(1, y, 4)).items():
        grid = _grid(*row).numpy()
        assert grid.shape[-1] == 3 and grid.dtype == np.uint8, tag  # grey shown grey, 4 bands as 3
    if name == "cycle_gan":
        assert tuple(model.pool_X.images.shape[-1:]) == (x,) and tuple(model.pool_Y.images.shape[-1:]) == (y,)


@pytest.mark.parametrize("name,x,y,options,message", [
    ("cycle_gan", 1, 3, {}, "X has 1 channels, Y 3: turn it off with --lambda_identity 0"),
    ("cut", 1, 3, {}, "X and Y need equal channels"),
    ("pix2pixhd", 3, 1, dict(netG="global", no_vgg_loss=False), "VGG loss compares RGB pictures.*--no_vgg_loss"),
])
def test_what_cannot_apply_is_one_line(name: str, x: int, y: int, options: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        configured(name, x, y, **options)


def test_display_shows_grey_grey_and_chosen_bands() -> None:
    from cyclegan_tf.data.pixels import display, parse_bands

    grey = tf.constant([[[[0.5]]]])
    assert display(grey).numpy().ravel().tolist() == [0.5, 0.5, 0.5]
    bands = tf.constant([[[[0.1, 0.2, 0.3, 0.4, 0.5]]]])
    assert display(bands, parse_bands("4,0,2")).numpy().ravel().tolist() == pytest.approx([0.5, 0.1, 0.3])
    with pytest.raises(UserError, match="three band indices"):
        parse_bands("1,2")
