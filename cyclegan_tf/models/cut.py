"""CUT and FastCUT (Park, Efros, Zhang, Zhu, 2020): one-sided unpaired translation by patch-wise
contrastive learning.

G: X→Y is the only generator and D_Y judges its outputs; there is no F: Y→X and no cycle. Instead,
PatchNCE ties each patch of G(x) to the patch of x at the same place: the features of G's encoder at
the `--nce_layers` (official indices into its nn.Sequential, or our layer names) are taken for x and
for G(x) at `--num_patches` random locations per layer, projected by H (the official netF, the
paper's H_l: one two-layer MLP per layer) to unit length, and scored by `losses.patch_nce`. CUT adds
the same loss on G(y) against y (`--nce_idt`); FastCUT instead trains on randomly flipped inputs
and compares G's features with the input's flipped back (`--flip_equivariance`). One step as the
official: G's forward, D_Y's update, then G and H together, judged by the updated D_Y.
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
from cyclegan_tf.options import Option


def nce_layer_names(G: keras.Model, cfg: TrainConfig) -> list[str]:
    """The layers of G that `--nce_layers` names: official indices (0,4,8,12,16 are the padded input,
    the two downsampling convs and residual blocks 1 and 5) or our feature names, comma-separated."""
    official = networks.official_layer_names(G, antialias=not cfg.no_antialias)
    chosen = []
    for item in (s.strip() for s in str(cfg.nce_layers).split(",")):
        if item.isdigit() and int(item) < len(official):
            chosen.append(official[int(item)])
        elif item in official:
            chosen.append(item)
        else:
            raise UserError(f"--nce_layers={cfg.nce_layers}: {item!r} is not a layer of G's encoder; give indices "
                            f"0…{len(official) - 1} of the official generator or names of {', '.join(official)}")
    return chosen


def _sample(feature: tf.Tensor, count: int, seed: tf.Tensor, ids: tf.Tensor | None = None):
    """`count` random locations of a [B, H, W, C] feature map, the same for every image (as the official
    PatchSampleF): ([B, count, C], the locations). Given `ids`, those locations."""
    s = tf.shape(feature)
    flat = tf.reshape(feature, [s[0], s[1] * s[2], feature.shape[-1]])
    if ids is None:
        ids = tf.argsort(tf.random.stateless_uniform([s[1] * s[2]], seed))[:count]
    return tf.gather(flat, ids, axis=1), ids


@register
class CUT(Model):
    name = "cut"
    defaults = dict(netG="resnet_9blocks", pool_size=0, epochs=200, epochs_decay=200, use_dropout=False)
    resize_when_decaying = True  # the official unaligned_dataset's is_finetuning
    options = (
        Option("lambda_GAN", 1.0, "CUT/FastCUT: weight of the adversarial loss GAN(G(x))."),
        Option("lambda_NCE", 1.0, "CUT/FastCUT: weight of the PatchNCE loss NCE(G(x), x) (FastCUT: 10)."),
        Option("nce_idt", True, "CUT: also the PatchNCE loss NCE(G(y), y), averaged with NCE(G(x), x) "
                                "(FastCUT: off)."),
        Option("nce_layers", "0,4,8,12,16", "CUT/FastCUT: G's layers compared by PatchNCE: indices of the official "
                                            "generator's layers or our names (e.g. input_pad,down1_conv)."),
        Option("nce_includes_all_negatives_from_minibatch", False,
               "CUT/FastCUT: negatives from every image of the batch, not only the same image."),
        Option("netF", "mlp_sample", "CUT/FastCUT: how patches are projected (an MLP per layer).",
               choices=("mlp_sample",)),
        Option("netF_nc", 256, "CUT/FastCUT: units of each projection MLP."),
        Option("nce_T", 0.07, "CUT/FastCUT: temperature of the PatchNCE loss."),
        Option("num_patches", 256, "CUT/FastCUT: locations sampled per layer and image."),
        Option("flip_equivariance", False, "FastCUT: train on randomly flipped inputs, comparing G's features "
                                           "flipped back (CUT: off)."),
        Option("no_antialias", False, "CUT/FastCUT: plain strided convs instead of blur-pool downsampling "
                                      "(in G and D_Y)."),
        Option("no_antialias_up", False, "CUT/FastCUT: transposed convs instead of blurred (bilinear) upsampling."),
        Option("init_type", "xavier", "CUT/FastCUT: weight initialisation (the official default: xavier).",
               choices=networks.INIT_TYPES),
        Option("init_gain", 0.02, "CUT/FastCUT: gain of the initialisation."),
    )
    optimizers = {"opt_D": ("D_Y",), "opt_G": ("G", "H")}  # one Adam for G and H: the official two, per weight
    exports = {"XtoY": "G"}
    official_generators = ("antialiased_resnet",)
    loss_names = ("G_GAN", "NCE", "NCE_Y", "D_real", "D_fake")

    @classmethod
    def validate(cls, cfg: TrainConfig) -> None:
        if not cfg.netG.startswith("resnet"):
            raise UserError(f"--netG={cfg.netG}: CUT's PatchNCE layers are those of a resnet generator "
                            "(resnet_9blocks or resnet_6blocks)")
        super().validate(cfg)
        x, y = cls.kinds(cfg)
        if x.channels != y.channels:
            raise UserError(f"{cls.name} compares G's features of x and of G(x) with one encoder, so X and Y need "
                            f"equal channels (X has {x.channels}, Y {y.channels}); cycle_gan takes any")
        if cfg.lambda_feat > 0:
            raise UserError(f"--lambda_feat={cfg.lambda_feat}: {cls.name} has no feature-matching loss (cycle_gan, "
                            "pix2pix and pix2pixhd have)")
        for name, low in (("num_patches", 1), ("netF_nc", 1), ("nce_T", 1e-6), ("lambda_NCE", 0), ("lambda_GAN", 0)):
            if not getattr(cfg, name) >= low:
                raise UserError(f"--{name}={getattr(cfg, name)}: must be at least {low}")

    @classmethod
    def define_networks(cls, cfg: TrainConfig) -> dict[str, Callable[[], keras.Model]]:
        built, channels = {}, cls.kinds(cfg)[0].channels

        def initialised(build: Callable[[], keras.Model]) -> Callable[[], keras.Model]:
            def run() -> keras.Model:
                with networks.initialization(cfg.init_type, cfg.init_gain):
                    return build()
            return run

        def generator() -> keras.Model:
            built["G"] = networks.define_G(cfg.netG, cfg.ngf, cfg.norm, cfg.upsample, cfg.use_dropout, name="G",
                                           input_nc=channels, output_nc=channels,
                                           antialias=not cfg.no_antialias, antialias_up=not cfg.no_antialias_up)
            return built["G"]

        def heads() -> keras.Model:  # sized by G's features, as the official creates them on the first batch
            G = built.get("G") or generator()
            features = networks.named_features(G, nce_layer_names(G, cfg))
            return networks.define_patch_mlp([t.shape[-1] for t in tf.nest.flatten(features.outputs)],
                                             cfg.netF_nc, name="H")

        return {"G": initialised(generator), "H": initialised(heads),
                "D_Y": initialised(lambda: networks.define_D(cfg.netD, cfg.ndf, cfg.n_layers_D, cfg.norm, name="D_Y",
                                                             input_nc=channels,
                                                             antialias=not cfg.no_antialias, num_D=cfg.num_D))}

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        super().__init__(cfg, steps_per_epoch, global_batch)
        self.nce_layers = nce_layer_names(self.G, cfg)
        self.encoder = networks.named_features(self.G, self.nce_layers)  # shares G's weights
        self.loss_names = tuple(n for n in self.loss_names if n != "NCE_Y" or cfg.nce_idt)
        self._forward = self.compiled(lambda x: self.generate(self.G, x))
        self._d_grads = self.compiled(self._discriminator_grads)
        self._g_loss = self.compiled(self._generator_loss)

    def _discriminator_grads(self, y: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor):
        with tf.GradientTape() as tape:
            terms = self.discriminator_objective(self.D_Y, y, fake, seed)
            total = self.opt_D.scale_loss(tf.add_n(list(terms.values())))  # scaled only under fp16
        return tape.gradient(total, self.D_Y.trainable_variables), {"D_real": terms["real"], "D_fake": terms["fake"]}

    def _features(self, images: tf.Tensor) -> list[tf.Tensor]:
        return tf.nest.flatten(self.encoder(images, training=True))

    def nce(self, keys: list[tf.Tensor], queries: list[tf.Tensor], seed: tf.Tensor) -> tf.Tensor:
        """λ_NCE × PatchNCE between G's features of outputs (`queries`) and of their inputs (`keys`, held
        constant), averaged over the layers."""
        c = self.cfg
        seeds = tf.random.experimental.stateless_split(seed, len(self.nce_layers))
        sampled_k, sampled_q = [], []
        for i, (k, q) in enumerate(zip(keys, queries)):
            k, ids = _sample(k, c.num_patches, seeds[i])
            sampled_k.append(k)
            sampled_q.append(_sample(q, c.num_patches, seeds[i], ids)[0])
        total = 0.0
        for k, q in zip(self._project(sampled_k), self._project(sampled_q)):
            total += self.average(losses.patch_nce(q, k, c.nce_T, c.nce_includes_all_negatives_from_minibatch))
        return c.lambda_NCE * total / len(self.nce_layers)

    def _project(self, patches: list[tf.Tensor]) -> list[tf.Tensor]:
        """H's MLPs on [B, P, C] patches, to unit length as the official Normalize (‖x‖ + 1e-7)."""
        flat = [tf.reshape(p, [-1, p.shape[-1]]) for p in patches]
        out = tf.nest.flatten(self.H(flat, training=True))
        out = [tf.reshape(tf.cast(o, tf.float32), [tf.shape(p)[0], -1, o.shape[-1]]) for o, p in zip(out, patches)]
        return [o / (tf.norm(o, axis=-1, keepdims=True) + 1e-7) for o in out]

    def _generator_loss(self, out, keys, batch, flipped, seed) -> dict[str, tf.Tensor]:
        """GAN(G(x)) and, on one encoder pass over all outputs G(x) ‖ G(y) (flipped back under flip
        equivariance), NCE against x's keys and NCE_Y against y's."""
        c = self.cfg
        seeds = tf.random.experimental.stateless_split(seed, 2)
        loss = {"G_GAN": c.lambda_GAN * self.gan(self.D_Y(out[:batch], training=True), True)}
        if c.lambda_NCE > 0:
            queries = [tf.where(flipped, tf.reverse(f, [2]), f) for f in self._features(out)]
            loss["NCE"] = self.nce([k[:batch] for k in keys], [q[:batch] for q in queries], seeds[0])
            if c.nce_idt:
                loss["NCE_Y"] = self.nce([k[batch:] for k in keys], [q[batch:] for q in queries], seeds[1])
        return loss

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        c = self.cfg
        seeds = tf.random.experimental.stateless_split(self.replica_seed(step), 3)
        flipped = tf.logical_and(c.flip_equivariance, tf.random.stateless_uniform([], seeds[0]) < 0.5)
        real = tf.concat([x, y], 0) if c.nce_idt else x  # one forward pass for G(x) and G(y), as the official
        batch = tf.shape(x)[0]
        with tf.GradientTape() as tape:
            out = self._forward(tf.where(flipped, tf.reverse(real, [2]), real))
            with tape.stop_recording():  # D's update and the keys need no record on G's tape
                grads, d_loss = self._d_grads(y, tf.stop_gradient(out[:batch]), seeds[1])
                self.opt_D.apply_gradients(zip(grads, self.D_Y.trainable_variables))
                keys = [tf.stop_gradient(f) for f in self._features(real)] if c.lambda_NCE > 0 else []
            loss = self._g_loss(out, keys, batch, flipped, seeds[2])
            nce = (loss.get("NCE", 0.0) + loss["NCE_Y"]) / 2 if "NCE_Y" in loss else loss.get("NCE", 0.0)
            total = self.opt_G.scale_loss(loss["G_GAN"] + nce)
        variables = self.variables_of(self.optimizers["opt_G"])
        grads = tape.gradient(total, variables)  # H has none without the NCE loss (--lambda_NCE 0)
        self.opt_G.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])
        for name in ("NCE", "NCE_Y") if c.nce_idt else ("NCE",):
            loss.setdefault(name, tf.constant(0.0))  # --lambda_NCE 0: not computed, logged as 0
        return {**loss, **d_loss}

    def translate(self, x: tf.Tensor) -> tf.Tensor:
        """G(x) in test mode, eagerly (see CycleGAN.translate)."""
        return self.G(x, training=False)

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        shown = {"X/generated": (x, self.translate(x))}
        if self.cfg.nce_idt:
            shown["Y/identity"] = (y, self.translate(y))
        return shown


@register
class FastCUT(CUT):
    name = "fastcut"
    defaults = dict(CUT.defaults, epochs=150, epochs_decay=50, lambda_NCE=10.0, nce_idt=False,
                    flip_equivariance=True)
