"""pix2pixHD (Wang et al., CVPR 2018): paired translation at high resolution (NVIDIA/pix2pixHD).

x is the input (a label map with --label_nc, one-hot encoded) and y its target photo, as in pix2pix.
G is coarse to fine: `--netG global` (the GlobalGenerator: 4 stride-2 levels, 9 residual blocks) or
`--netG local` (LocalEnhancer: the global generator on the input at half size, inside an enhancer at
full size). D is `--num_D` conditional PatchGANs on x ‖ image at 1, 1/2, 1/4 … size (`--netD
multiscale`). G's loss: LSGAN + λ_feat·feature matching (L1 between D's features on the real and the
fake pair) + λ_feat·VGG19 perceptual loss; D's: LSGAN, halved. As in the official code, both losses come
from the same D, before either update; then G is updated, then D.

Staged training: train `global` at half resolution, then `--netG local --load_pretrain RUN` at full
resolution, where `--niter_fix_global N` trains only the enhancer for N epochs, then all of G.
"""
from __future__ import annotations

from collections.abc import Callable

import keras
import tensorflow as tf

from cyclegan_tf import networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.errors import UserError
from cyclegan_tf.models import losses, register
from cyclegan_tf.models.pix2pix import LABEL_OPTIONS, Pix2Pix
from cyclegan_tf.options import Option

_SIZES = ("n_downsample_global", "n_blocks_global", "n_local_enhancers", "n_blocks_local")


@register
class Pix2PixHD(Pix2Pix):
    name = "pix2pixhd"
    defaults = dict(netG="global", netD="multiscale", num_D=2, n_layers_D=3, norm="instance", gan_mode="lsgan",
                    use_dropout=False, pool_size=0, lambda_feat=10.0, preprocess="scale_width", load_size=1024,
                    image_size=512)
    options = LABEL_OPTIONS + (
        Option("n_downsample_global", 4, "Stride-2 levels of the global generator."),
        Option("n_blocks_global", 9, "Residual blocks of the global generator."),
        Option("n_local_enhancers", 1, "--netG local: enhancers around the global generator (each doubles "
               "the resolution)."),
        Option("n_blocks_local", 3, "Residual blocks of each local enhancer."),
        Option("niter_fix_global", 0, "--netG local: epochs that train only the enhancers, the global generator "
               "held; then all of G, with Adam restarted (the official code's intent)."),
        Option("load_pretrain", "", "A new run starts from this run's weights (folder, or name under checkpoints/): "
               "a global run's generator becomes a local run's global part; D's scales are taken where they fit."),
        Option("no_ganFeat_loss", False, "No discriminator feature-matching loss."),
        Option("no_vgg_loss", False, "No VGG19 perceptual loss (needed where the VGG19 weights cannot be had)."),
        Option("vgg_weights", "", "The VGG19 ImageNet weights (Keras' vgg19_weights_tf_dim_ordering_tf_kernels_"
               "notop.h5); default: Keras' cache, ~/.keras/models."),
    )
    loss_names = ("G_GAN", "G_GAN_Feat", "G_VGG", "D_real", "D_fake")
    official_generators = ("global", "local")
    demo_flags = ("--no_vgg_loss",)  # the demo is offline: no VGG19 ImageNet weights

    @classmethod
    def validate(cls, cfg: TrainConfig) -> None:
        if cfg.netG not in ("global", "local"):
            raise UserError(f"--netG={cfg.netG}: pix2pixhd's generators are global and local")
        for name in _SIZES:
            if getattr(cfg, name) < (0 if name == "n_blocks_local" else 1):
                raise UserError(f"--{name}={getattr(cfg, name)}: must be at least 1")
        super().validate(cfg)
        if cfg.niter_fix_global < 0:
            raise UserError(f"--niter_fix_global={cfg.niter_fix_global}: must be at least 0")
        if cfg.niter_fix_global and cfg.netG != "local":
            raise UserError(f"--niter_fix_global={cfg.niter_fix_global} holds the global part of --netG local; "
                            f"--netG={cfg.netG} has none")
        if not cfg.no_vgg_loss and cls.kinds(cfg)[1].channels != 3:
            raise UserError(f"pix2pixhd's VGG loss compares RGB pictures, and the targets have "
                            f"{cls.kinds(cfg)[1].channels} channel(s): add --no_vgg_loss")
        if not cfg.no_vgg_loss:
            path = losses.vgg_weights_path(cfg.vgg_weights)
            if path is None:
                raise UserError("pix2pixhd's VGG loss needs the VGG19 ImageNet weights and Keras has none cached "
                                f"(offline?): give --vgg_weights=PATH to {losses.VGG_FILE}, or --no_vgg_loss")
            if not tf.io.gfile.exists(path):
                raise UserError(f"--vgg_weights={path}: no such file")

    @classmethod
    def input_multiple(cls, cfg: TrainConfig) -> int:
        return networks.generator_multiple(cfg.netG, cfg.n_downsample_global, cfg.n_local_enhancers)

    @classmethod
    def feature_matching(cls, cfg: TrainConfig) -> bool:
        return cfg.lambda_feat > 0 and not cfg.no_ganFeat_loss

    @classmethod
    def define_networks(cls, cfg: TrainConfig) -> dict[str, Callable[[], keras.Model]]:
        target = cls.kinds(cfg)[1].channels
        g = dict(netG=cfg.netG, ngf=cfg.ngf, norm=cfg.norm, upsample=cfg.upsample, input_nc=cls.input_channels(cfg),
                 output_nc=target, **{k: getattr(cfg, k) for k in _SIZES})
        d = dict(ndf=cfg.ndf, n_layers_D=cfg.n_layers_D, norm=cfg.norm, input_nc=cls.input_channels(cfg) + target,
                 num_D=cfg.num_D, features=cls.feature_matching(cfg))
        return {"G": lambda: networks.define_G(**g, name="G"), "D": lambda: networks.define_D(cfg.netD, **d, name="D")}

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        super().__init__(cfg, steps_per_epoch, global_batch)
        self.vgg = None
        if not cfg.no_vgg_loss:
            with networks.precision(cfg.precision):
                self.vgg = losses.vgg19_features(losses.vgg_weights_path(cfg.vgg_weights))
        self.fix_steps = self._fixed_steps(steps_per_epoch) if self._holds_global() else 0
        held = self.G.get_layer("global").trainable_variables if self.fix_steps else []
        self._held = {id(v) for v in held}
        self._d_grads = self.compiled(self._discriminator_step)
        self._g_loss = self.compiled(self._generator_loss)

    # --- staged training ---------------------------------------------------------------------------

    def _holds_global(self) -> bool:
        return self.cfg.netG == "local" and self.cfg.niter_fix_global > 0

    def _fixed_steps(self, steps_per_epoch: int) -> int:
        c = self.cfg
        if c.max_steps > 0:  # epochs shared out over --max_steps as the schedule's are
            return round(c.max_steps * c.niter_fix_global / max(1, c.epochs + c.epochs_decay))
        return c.niter_fix_global * steps_per_epoch

    def learning_rate(self, optimizer: str):
        if optimizer == "opt_G" and self._holds_global():  # G's Adam restarts its count at the switch
            return lambda: self.lr(self.step)
        return super().learning_rate(optimizer)

    def begin_step(self, step: tf.Tensor) -> None:
        if self.fix_steps:
            tf.cond(tf.equal(step, self.fix_steps), self._restart_adam_G, lambda: tf.constant(False))

    def _restart_adam_G(self) -> tf.Tensor:
        """Adam for all of G from scratch, as the official update_fixed_params builds a new optimiser."""
        adam = getattr(self.opt_G, "inner_optimizer", self.opt_G)
        slots = [v for v in adam.variables if v.name.endswith(("_momentum", "_velocity"))]  # Keras' slot names
        if len(slots) != 2 * len(self.G.trainable_variables):
            raise RuntimeError(f"G's Adam has {len(slots)} moment slots for {len(self.G.trainable_variables)} weights")
        for v in slots:
            v.assign(tf.zeros_like(v))
        adam.iterations.assign(0)
        return tf.constant(True)  # the assignments run: a tf.function keeps a branch's stateful ops

    def warm_start(self, open_networks: Callable) -> None:
        if self.cfg.load_pretrain:
            self._load_pretrain(self.cfg.load_pretrain, open_networks)

    def _load_pretrain(self, run: str, open_networks: Callable) -> None:
        nets, cfg, folder, step = open_networks(run, ["G", "D"], "--load_pretrain")
        if set(nets) != {"G", "D"}:
            raise UserError(f"--load_pretrain={run}: a {cfg.model} run has no G and D to start from")
        G, weights = self.G, nets["G"].get_weights()
        if cfg.netG == "global" and self.cfg.netG == "local":
            G, weights = self.G.get_layer("global"), weights[:-2]  # all but the global generator's RGB head
        if [w.shape for w in G.get_weights()] != [w.shape for w in weights]:
            raise UserError(f"--load_pretrain={run}: its {cfg.netG} generator (ngf {cfg.ngf}) does not fit this "
                            f"{self.cfg.netG} one (a local run's global part has ngf × 2^n_local_enhancers filters; "
                            "label_nc, n_downsample_global and n_blocks_global must match)")
        G.set_weights(weights)
        taken = [name for name, a, b in self._discriminator_parts(nets["D"]) if _copy_if_same(a, b)]
        print(f"--load_pretrain: G{' (global part)' if G is not self.G else ''} and D's "
              f"{', '.join(taken) or 'nothing'} from {folder} (step {step})", flush=True)

    def _discriminator_parts(self, other: keras.Model) -> list[tuple[str, keras.Model, keras.Model]]:
        """(name, source, destination) of D's parts that can be taken from `other`: the multiscale D's
        scales by name (official: scale i keeps its absolute resolution when num_D grows), else D whole."""
        scales = sorted(layer.name for layer in self.D.layers if layer.name.startswith("scale"))
        if scales and all(layer.name in scales for layer in other.layers if layer.name.startswith("scale")):
            have = {layer.name for layer in other.layers}
            return [(n, other.get_layer(n), self.D.get_layer(n)) for n in scales if n in have]
        return [("whole", other, self.D)]

    # --- the step ----------------------------------------------------------------------------------

    def _discriminator_step(self, x: tf.Tensor, y: tf.Tensor, fake: tf.Tensor, seed: tf.Tensor):
        """D's gradients and losses, and D's output on the real pair (its features are matched by G)."""
        real_pair, fake_pair = tf.concat([x, y], -1), tf.concat([x, fake], -1)
        with tf.GradientTape() as tape:
            real = self.D(real_pair, training=True)
            d_real, d_fake = self.discriminator_gan("D", real, self.D(fake_pair, training=True))
            loss = {"D_real": d_real, "D_fake": d_fake}
            total = loss["D_real"] + loss["D_fake"]
            if self.cfg.gan_mode == "wgangp":
                total += self.cfg.lambda_gp * self.average(losses.gradient_penalty(self.D, real_pair, fake_pair, seed))
        return tape.gradient(self.opt_D.scale_loss(total), self.D.trainable_variables), loss, real

    def _generator_loss(self, x: tf.Tensor, y: tf.Tensor, fake: tf.Tensor, real) -> dict[str, tf.Tensor]:
        c, judged = self.cfg, self.D(tf.concat([x, fake], -1), training=True)
        zero = tf.constant(0.0)
        return {"G_GAN": self.gan(judged, True),
                "G_GAN_Feat": c.lambda_feat * self.average(losses.feature_matching(real, judged))
                if self.feature_matching(c) else zero,
                "G_VGG": c.lambda_feat * self.average(losses.vgg_perceptual(self.vgg, fake, y))
                if self.vgg is not None else zero}

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        x = self.encode(x)
        with tf.GradientTape() as tape:
            fake = self._forward(x)
            with tape.stop_recording():
                d_grads, d_loss, real = self._d_grads(x, y, tf.stop_gradient(fake), self.replica_seed(step))
            loss = self._g_loss(x, y, fake, real)
            total = self.opt_G.scale_loss(tf.add_n(list(loss.values())))
        grads = tape.gradient(total, self.G.trainable_variables)
        if self._held:  # the global generator's gradients are 0 until the switch: its Adam moments stay 0
            train_global = tf.cast(step >= self.fix_steps, tf.float32)
            grads = [g * train_global if id(v) in self._held else g for g, v in zip(grads, self.G.trainable_variables)]
        self.opt_G.apply_gradients(zip(grads, self.G.trainable_variables))
        self.opt_D.apply_gradients(zip(d_grads, self.D.trainable_variables))
        return {**loss, **d_loss}


def _copy_if_same(source: keras.Model, destination: keras.Model) -> bool:
    weights = source.get_weights()
    if [w.shape for w in weights] != [w.shape for w in destination.get_weights()]:
        return False
    destination.set_weights(weights)
    return True
