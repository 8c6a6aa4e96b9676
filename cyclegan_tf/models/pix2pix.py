"""pix2pix (Isola et al., 2017): paired translation, built from the CycleGAN parts.

G: A→B is the generator (U-Net by default) and D a conditional PatchGAN that sees the input and an
output concatenated along channels, so it judges whether the output fits *its* input. The training
pairs come from one TFRecord file of (A, B) images; `--direction BtoA` swaps their roles, so here x
is always the input and y its target. One step follows the official code: G's forward; D on (x, y)
against (x, G(x)); then G, judged by the updated D, plus λ_L1·|G(x) − y| (and, with --lambda_feat,
pix2pixHD's feature matching). With --label_nc the input is a label map, one-hot encoded before G and D
see it (pix2pixHD's input; here for pix2pix too).
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from cyclegan_tf import networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.errors import UserError
from cyclegan_tf.models import losses, register
from cyclegan_tf.models.base import Model
from cyclegan_tf.options import Option, parse_palette

LABEL_OPTIONS = (
    Option("label_nc", 0, "Inputs are label maps of this many classes, one-hot encoded (0: RGB inputs). A class is "
           "the label PNG's grey value, or with --palette the index of its colour; resized nearest-neighbour."),
    Option("palette", "", "Colours of the label classes, class 0 first: 'R,G,B;R,G,B;…' or a JSON file of "
           "[[R, G, B], …]. Empty: a class is the grey value."),
    Option("label_edges", False, "With --label_nc: one more input channel, the boundaries between classes (1 on "
           "either side of one), as pix2pixHD's instance edge map but from the label map: what its generators "
           "trained with instance maps take (docs/importing.md)."),
)


@register
class Pix2Pix(Model):
    name = "pix2pix"
    paired = True
    defaults = dict(netG="unet_256", norm="batch", gan_mode="vanilla", use_dropout=True, pool_size=0)
    options = LABEL_OPTIONS
    optimizers = {"opt_G": ("G",), "opt_D": ("D",)}
    exports = {"XtoY": "G"}
    official_generators = ("resnet", "unet")  # junyanz's, a CycleGAN's G_A or G_B included
    loss_names = ("G_GAN", "G_L1", "G_feat", "D_real", "D_fake")

    @classmethod
    def validate(cls, cfg: TrainConfig) -> None:
        super().validate(cfg)
        palette = parse_palette(cfg.palette)
        if palette and cfg.label_nc < len(palette):
            raise UserError(f"--label_nc={cfg.label_nc}: the palette has {len(palette)} colours (give at least that)")
        if palette and not cfg.label_nc:
            raise UserError("--palette needs --label_nc (the number of classes)")
        if not 0 <= cfg.label_nc <= 256:
            raise UserError(f"--label_nc={cfg.label_nc}: must be between 0 and 256 (0: RGB inputs)")

    @classmethod
    def input_is_labels(cls, cfg: TrainConfig) -> bool:
        return cfg.label_nc > 0

    @classmethod
    def input_channels(cls, cfg: TrainConfig) -> int:
        """What G sees: one-hot label maps, or the input images' channels."""
        return cfg.label_nc + cfg.label_edges if cfg.label_nc else cls.kinds(cfg)[0].channels

    @classmethod
    def label_encoder(cls, cfg: TrainConfig) -> keras.layers.Layer | None:
        if not cfg.label_nc:
            return None
        return networks.LabelEncoder(cfg.label_nc, parse_palette(cfg.palette), edges=cfg.label_edges)

    @classmethod
    def exported_network(cls, cfg: TrainConfig, nets: dict[str, keras.Model], direction: str) -> keras.Model:
        G, encoder = nets["G"], cls.label_encoder(cfg)
        if encoder is None:
            return G
        images = keras.Input((None, None, cls.kinds(cfg)[0].channels))
        model = keras.Model(images, G(encoder(images)), name="labels_to_G")
        model.input_multiple = cls.input_multiple(cfg)  # what api.translate pads to
        return model

    @classmethod
    def define_networks(cls, cfg: TrainConfig) -> dict[str, Callable[[], keras.Model]]:
        target = cls.kinds(cfg)[1].channels
        g = dict(netG=cfg.netG, ngf=cfg.ngf, norm=cfg.norm, upsample=cfg.upsample, use_dropout=cfg.use_dropout,
                 input_nc=cls.input_channels(cfg), output_nc=target)
        d = dict(ndf=cfg.ndf, n_layers_D=cfg.n_layers_D, norm=cfg.norm, input_nc=cls.input_channels(cfg) + target,
                 num_D=cfg.num_D, features=cfg.lambda_feat > 0)
        return {"G": lambda: networks.define_G(**g, name="G"), "D": lambda: networks.define_D(cfg.netD, **d, name="D")}

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        super().__init__(cfg, steps_per_epoch, global_batch)
        self.encoder = self.label_encoder(cfg)
        # Separate functions, so that one tape can span G's forward, D's update and G's loss.
        self._forward = self.compiled(lambda x: self.generate(self.G, x))
        self._d_grads = self.compiled(self._discriminator_grads)
        self._g_loss = self.compiled(self._generator_loss)

    def encode(self, x: tf.Tensor) -> tf.Tensor:
        """The input as G and D see it: one-hot label maps with --label_nc, else the image itself."""
        return x if self.encoder is None else self.encoder(x)

    def _discriminator_grads(self, x: tf.Tensor, y: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor):
        with tf.GradientTape() as tape:
            terms = self.discriminator_objective(self.D, tf.concat([x, y], -1), tf.concat([x, fake], -1), seed)
            total = self.opt_D.scale_loss(tf.add_n(list(terms.values())))  # scaled only under fp16
        return tape.gradient(total, self.D.trainable_variables), {"D_real": terms["real"], "D_fake": terms["fake"]}

    def _generator_loss(self, x: tf.Tensor, y: tf.Tensor, fake: tf.Tensor) -> dict[str, tf.Tensor]:
        judged = self.D(tf.concat([x, fake], -1), training=True)
        loss = {"G_GAN": self.gan(judged, True), "G_L1": self.cfg.lambda_L1 * self.average(losses.l1(fake, y))}
        if self.cfg.lambda_feat > 0:
            real = self.D(tf.concat([x, y], -1), training=True)
            loss["G_feat"] = self.cfg.lambda_feat * self.average(losses.feature_matching(real, judged))
        else:
            loss["G_feat"] = tf.constant(0.0)
        return loss

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        x = self.encode(x)
        with tf.GradientTape() as tape:
            fake = self._forward(x)
            with tape.stop_recording():
                grads, d_loss = self._d_grads(x, y, tf.stop_gradient(fake), self.replica_seed(step))
                self.opt_D.apply_gradients(zip(grads, self.D.trainable_variables))
            loss = self._g_loss(x, y, fake)
            total = self.opt_G.scale_loss(tf.add_n(list(loss.values())))
        grads = tape.gradient(total, self.G.trainable_variables)
        self.opt_G.apply_gradients(zip(grads, self.G.trainable_variables))
        return {**loss, **d_loss}

    def translate(self, x: tf.Tensor) -> tf.Tensor:
        """G(x) in test mode, eagerly (see CycleGAN.translate); x as the data gives it (label maps as images)."""
        return self.G(self.encode(x), training=False)

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        return {"pair/input_output_target": (x, self.translate(x), y)}
