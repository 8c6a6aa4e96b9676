"""CycleGAN (Zhu et al., 2017): unpaired translation with two generators and two discriminators.

G: X→Y and F: Y→X are the generators; D_Y judges G's outputs, D_X judges F's. One step updates G and
F together (D frozen), then D_X and D_Y on pooled fakes, as the official code does.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from cyclegan_tf import networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.models import losses, register
from cyclegan_tf.models.base import Model
from cyclegan_tf.models.pool import ImagePool


@register
class CycleGAN(Model):
    name = "cycle_gan"
    optimizers = {"opt_G": ("G", "F"), "opt_D": ("D_X", "D_Y")}
    exports = {"XtoY": "G", "YtoX": "F"}
    loss_names = ("G", "F", "cycle", "identity", "feat", "D_X", "D_Y")
    discriminator_losses = (("D_X",), ("D_Y",))  # D_X can win while D_Y does not: F then learns nothing

    @classmethod
    def identity_loss(cls, cfg: TrainConfig) -> str:
        return "--lambda_identity 0" if cfg.lambda_identity > 0 else ""

    @classmethod
    def define_networks(cls, cfg: TrainConfig) -> dict[str, Callable[[], keras.Model]]:
        x, y = (k.channels for k in cls.kinds(cfg))
        g = dict(netG=cfg.netG, ngf=cfg.ngf, norm=cfg.norm, upsample=cfg.upsample, use_dropout=cfg.use_dropout)
        d = dict(netD=cfg.netD, ndf=cfg.ndf, n_layers_D=cfg.n_layers_D, norm=cfg.norm, num_D=cfg.num_D,
                 features=cfg.lambda_feat > 0)
        return {"G": lambda: networks.define_G(**g, input_nc=x, output_nc=y, name="G"),
                "F": lambda: networks.define_G(**g, input_nc=y, output_nc=x, name="F"),
                "D_Y": lambda: networks.define_D(**d, input_nc=y, name="D_Y"),
                "D_X": lambda: networks.define_D(**d, input_nc=x, name="D_X")}

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        super().__init__(cfg, steps_per_epoch, global_batch)
        x, y = (k.channels for k in self.kinds(cfg))
        self.pool_X = ImagePool(cfg.pool_size, (cfg.image_size, cfg.image_size, x), name="pool_X")  # F(y), for D_X
        self.pool_Y = ImagePool(cfg.pool_size, (cfg.image_size, cfg.image_size, y), name="pool_Y")  # G(x), for D_Y
        self._g_grads = self.compiled(self._generator_grads)
        self._d_grads = self.compiled(self._discriminator_grads)

    def state(self) -> dict[str, tf.Module]:
        return {"pool_X": self.pool_X, "pool_Y": self.pool_Y}

    def _generator_grads(self, x: tf.Tensor, y: tf.Tensor):
        c = self.cfg
        with tf.GradientTape() as tape:
            G, F = (lambda t: self.generate(self.G, t)), (lambda t: self.generate(self.F, t))
            fake_y, fake_x = G(x), F(y)
            rec_x, rec_y = F(fake_y), G(fake_x)
            judged_y, judged_x = self.D_Y(fake_y, training=True), self.D_X(fake_x, training=True)
            loss = {"G": self.gan(judged_y, True), "F": self.gan(judged_x, True),
                    "cycle": c.lambda1 * self.average(losses.l1(rec_x, x))
                    + c.lambda2 * self.average(losses.l1(rec_y, y))}
            loss["feat"] = self._feature_matching(x, y, judged_x, judged_y)
            if c.lambda_identity > 0:  # G should leave Y alone, F should leave X alone: keeps colours
                loss["identity"] = c.lambda_identity * (c.lambda2 * self.average(losses.l1(G(y), y))
                                                        + c.lambda1 * self.average(losses.l1(F(x), x)))
            else:
                loss["identity"] = tf.constant(0.0)
            total = self.opt_G.scale_loss(tf.add_n(list(loss.values())))  # scaled only under fp16
        return tape.gradient(total, self.variables_of(self.optimizers["opt_G"])), loss, fake_x, fake_y

    def _feature_matching(self, x, y, judged_x, judged_y) -> tf.Tensor:
        """λ_feat × feature matching of D_Y on G(x) against real y, and of D_X on F(y) against real x; on
        spatial means, as the images are unpaired."""
        if self.cfg.lambda_feat <= 0:
            return tf.constant(0.0)
        match = [losses.feature_matching(D(real, training=True), judged, spatial_mean=True)
                 for D, real, judged in ((self.D_Y, y, judged_y), (self.D_X, x, judged_x))]
        return self.cfg.lambda_feat * self.average(match[0] + match[1])

    def _discriminator_grads(self, x, y, pooled_x, pooled_y, seed):
        seeds = tf.random.experimental.stateless_split(seed, 2)
        with tf.GradientTape() as tape:
            loss = {"D_Y": tf.add_n(list(self.discriminator_objective(self.D_Y, y, pooled_y, seeds[0]).values())),
                    "D_X": tf.add_n(list(self.discriminator_objective(self.D_X, x, pooled_x, seeds[1]).values()))}
            total = self.opt_D.scale_loss(loss["D_X"] + loss["D_Y"])
        return tape.gradient(total, self.variables_of(self.optimizers["opt_D"])), loss

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        seeds = tf.random.experimental.stateless_split(self.replica_seed(step), 3)
        grads, loss, fake_x, fake_y = self._g_grads(x, y)
        self.opt_G.apply_gradients(zip(grads, self.variables_of(self.optimizers["opt_G"])))
        pooled_x = self.pool_X(tf.stop_gradient(fake_x), seeds[0])
        pooled_y = self.pool_Y(tf.stop_gradient(fake_y), seeds[1])
        grads, d_loss = self._d_grads(x, y, pooled_x, pooled_y, seeds[2])
        self.opt_D.apply_gradients(zip(grads, self.variables_of(self.optimizers["opt_D"])))
        return {**loss, **d_loss}

    def translate(self, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, ...]:
        """(G(x), F(G(x)), F(y), G(F(y))), eagerly: previews are occasional, and tracing four generator
        calls costs far more than running them once (docs/benchmarks.md)."""
        fake_y, fake_x = self.G(x, training=False), self.F(y, training=False)
        return fake_y, self.F(fake_y, training=False), fake_x, self.G(fake_x, training=False)

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        fake_y, rec_x, fake_x, rec_y = self.translate(x, y)
        return {"X/generated": (x, fake_y), "X/reconstruction": (x, fake_y, rec_x),
                "Y/generated": (y, fake_x), "Y/reconstruction": (y, fake_x, rec_y)}
