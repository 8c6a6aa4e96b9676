"""What every model shares, and what a model declares. Generic code (loop, runs, export, bench, demo)
reads these declarations and never asks for a model by name.

A model is a tf.Module holding everything its checkpoint needs. A subclass declares, as class attributes:
  name        its registry name (`train.py --model NAME`)
  paired      reads pairs from --X (build_data.py --paired), else unpaired --X and --Y
  defaults    the official values of common options where they differ from CycleGAN's; flags given win
  options     options of its own (options.Option), added to train.py's flags and kept in flags.json
  optimizers  optimiser name → the networks it updates, in order (the order is the checkpoint's)
  exports     direction (XtoY, YtoX) → the generator export_graph.py writes for it
  loss_names  the losses its step returns, logged as loss/NAME
  discriminator_losses  which of those make up each discriminator's loss, for the health monitor of a D that
              wins; empty: every name starting with D is one discriminator's
  resize_when_decaying  the decay epochs train on images resized to the crop size, without the random
              crop's zoom (CUT's official `is_finetuning`); False: one preprocessing throughout
  demo_flags  train.py flags the offline demo adds (e.g. leaving out a loss whose weights must be fetched)
and implements `define_networks` (name → builder), `replica_step`, `previews`, and where needed
`validate` and `state` (more checkpointed state, e.g. image pools). The checkpoint is then built here,
once: networks, optimisers, state, the step counter and the generators' dropout random state.

Every loss is averaged over the global batch, so the gradients the optimisers sum across replicas are
those of the global mean.
"""
from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from typing import ClassVar

import keras
import tensorflow as tf

from cyclegan_tf import networks
from cyclegan_tf.config import TrainConfig
from cyclegan_tf.data import pixels
from cyclegan_tf.errors import UserError
from cyclegan_tf.models import optim
from cyclegan_tf.models.adversarial import Adversarial
from cyclegan_tf.models.optim import LinearDecay, schedule_steps
from cyclegan_tf.options import Option


class Model(tf.Module):
    name: ClassVar[str] = ""
    paired: ClassVar[bool] = False
    defaults: ClassVar[dict] = {}
    options: ClassVar[tuple[Option, ...]] = ()
    optimizers: ClassVar[dict[str, tuple[str, ...]]] = {}
    exports: ClassVar[dict[str, str]] = {}
    # Families of the official PyTorch generators (networks/official.py: Architecture.family) whose import
    # becomes a run of this model: it must export them as its one generator G.
    official_generators: ClassVar[tuple[str, ...]] = ()
    loss_names: ClassVar[tuple[str, ...]] = ()
    discriminator_losses: ClassVar[tuple[tuple[str, ...], ...]] = ()
    resize_when_decaying: ClassVar[bool] = False
    demo_flags: ClassVar[tuple[str, ...]] = ()

    # --- declarations, read before a model is built ------------------------------------------------

    @classmethod
    def configure(cls, cfg: TrainConfig, explicit: set[str], resuming: bool = False) -> TrainConfig:
        """The run's options: for a new run this model's defaults where not given; its own options filled
        in with their defaults where neither given nor saved."""
        own = {o.name: cls.defaults.get(o.name, o.default) for o in cls.options}
        common = {} if resuming else {k: v for k, v in cls.defaults.items() if k not in explicit and k not in own}
        return dataclasses.replace(cfg, **common, extra=own | cfg.extra)

    @classmethod
    def validate(cls, cfg: TrainConfig) -> None:
        """One-line UserError for options this model cannot train with (after TrainConfig.validate)."""
        for name, value in cfg.extra.items():
            option = next((o for o in cls.options if o.name == name), None)
            if option is None:
                raise UserError(f"--{name} is not an option of --model={cls.name}")
            try:
                option.check(value)
            except ValueError as e:
                raise UserError(str(e)) from None
        if cls.paired and not cfg.X:
            raise UserError("--X is required: the paired TFRecord file from build_data.py --paired")
        if cls.paired and cfg.Y:
            raise UserError(f"--Y={cfg.Y}: {cls.name} reads its pairs from --X alone (build_data.py --paired); "
                            "drop --Y")
        if not cls.paired and (not cfg.X or not cfg.Y):
            raise UserError("--X and --Y are required: TFRecord files from build_data.py")
        multiple = cls.input_multiple(cfg)
        if cfg.image_size % multiple:
            raise UserError(f"--image_size={cfg.image_size}: {cfg.netG} needs a multiple of {multiple}")
        if cfg.recompute and cfg.use_dropout:
            # the recomputed forward would draw new dropout masks, and the gradients would be wrong
            raise UserError("--recompute cannot be combined with dropout (--use_dropout; add --nouse_dropout)")
        x, y = cls.kinds(cfg)
        if cls.identity_loss(cfg) and x.channels != y.channels:
            raise UserError(f"the identity loss feeds each domain to the generator into it, and X has {x.channels} "
                            f"channels, Y {y.channels}: turn it off with {cls.identity_loss(cfg)}, or build both "
                            "domains with equal channels (build_data.py --X_channels/--Y_channels)")
        if cfg.gan_mode == "ghmc" and not cls.discriminator_names():
            raise UserError(f"--gan_mode ghmc: --model={cls.name} declares no discriminator (optimizer opt_D) to keep "
                            "its statistics for")

    @classmethod
    def kinds(cls, cfg: TrainConfig) -> tuple[pixels.Kind, pixels.Kind]:
        """The pixels of X (a paired model's input) and Y (its target): channels, type and range."""
        return (pixels.kind(cfg.input_nc, cfg.X_dtype, cfg.X_range, "--X_range"),
                pixels.kind(cfg.output_nc, cfg.Y_dtype, cfg.Y_range, "--Y_range"))

    @classmethod
    def exported_kinds(cls, cfg: TrainConfig, direction: str) -> tuple[pixels.Kind, pixels.Kind]:
        """(what goes in, what comes out) of an export of `direction`."""
        x, y = cls.kinds(cfg)
        return (y, x) if direction == "YtoX" else (x, y)

    @classmethod
    def define_networks(cls, cfg: TrainConfig) -> dict[str, Callable[[], keras.Model]]:
        """Network name → a function building it (exports build only the generators they restore)."""
        raise NotImplementedError

    @classmethod
    def identity_loss(cls, cfg: TrainConfig) -> str:
        """The flag that turns off a loss feeding a domain to the generator into it (it needs equal channels), if
        that loss is on; else ''."""
        return ""

    @classmethod
    def input_multiple(cls, cfg: TrainConfig) -> int:
        """Image sides must be multiples of this for the generators to return the input's size."""
        return networks.generator_multiple(cfg.netG)

    @classmethod
    def input_is_labels(cls, cfg: TrainConfig) -> bool:
        """Whether the inputs are label maps (resized nearest-neighbour, in training and in exports)."""
        return False

    @classmethod
    def exported_network(cls, cfg: TrainConfig, nets: dict[str, keras.Model], direction: str) -> keras.Model:
        """What an export of `direction` runs on images in [-1, 1]: the declared generator, or a model
        around it (e.g. encoding label maps first)."""
        return nets[cls.exports[direction]]

    @classmethod
    def exported_direction(cls, cfg: TrainConfig, direction: str) -> str:
        """What an export of `direction` stores as its direction (a paired run stores AtoB or BtoA)."""
        return cfg.direction if cls.paired else direction

    @classmethod
    def generator_names(cls) -> list[str]:
        return list(dict.fromkeys(cls.exports.values()))

    @classmethod
    def discriminator_names(cls) -> tuple[str, ...]:
        """The discriminators: the networks of the optimiser opt_D."""
        return cls.optimizers.get("opt_D", ())

    # --- the built model ---------------------------------------------------------------------------

    def __init__(self, cfg: TrainConfig, steps_per_epoch: int, global_batch: int) -> None:
        """Builds the networks, optimisers, schedule and state; call it under the run's strategy scope.

        Args:
            cfg: the run's options, resolved and validated (runs.prepare).
            steps_per_epoch: steps in one epoch of the training data (the schedule counts epochs).
            global_batch: the batch size summed over replicas; every loss is averaged over it."""
        super().__init__(name=self.name)
        self.cfg, self.global_batch = cfg, global_batch
        # Keras draws unseeded initialiser seeds from Python's `random`. TensorFlow's global seed is
        # left alone: every random op of ours is stateless, and tf.data rejects tensor seeds under it.
        random.seed(cfg.seed)
        constant, decay = schedule_steps(cfg, steps_per_epoch)
        self.total_steps = constant + decay
        self.lr = LinearDecay(cfg.learning_rate, constant, decay)
        self.lr_D = LinearDecay(cfg.D_learning_rate, constant, decay) if cfg.D_learning_rate else self.lr
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
        with networks.precision(cfg.precision):
            self.nets = {k: build() for k, build in self.define_networks(cfg).items()}
        self.opts = {k: optim.adam(cfg, k, self.variables_of(nets), self.learning_rate(k))
                     for k, nets in self.optimizers.items()}
        for k, obj in {**self.nets, **self.opts}.items():
            setattr(self, k, obj)
        self.adversarial = Adversarial(cfg, self.discriminator_names(), self.average)

    @property
    def ghm(self) -> dict[str, tf.Variable]:
        """--gan_mode ghmc's running statistics per discriminator (Adversarial's)."""
        return self.adversarial.ghm

    def warm_start(self, open_networks: Callable) -> None:
        """Called once before a new run's first step (not on resume): e.g. weights from another run, read
        with `open_networks(run, names, flag) → (networks, options, folder, step)` (runs.open_networks)."""

    def begin_step(self, step: tf.Tensor) -> None:
        """Traced into the step before the replicas run, in cross-replica context (state changes that must
        happen on every replica at once, at a given step)."""

    def variables_of(self, names: tuple[str, ...]) -> list[tf.Variable]:
        return [v for n in names for v in self.nets[n].trainable_variables]

    def state(self) -> dict[str, tf.Module]:
        """Checkpointed state beyond networks, optimisers and the step (e.g. image pools)."""
        return {}

    def checkpoint(self) -> tf.train.Checkpoint:
        generators = [self.nets[n] for n in self.generator_names()]
        ghm = {"ghm": self.adversarial.ghm} if self.adversarial.ghm else {}  # ghmc's statistics; others unchanged
        return tf.train.Checkpoint(**self.nets, **self.opts, **self.state(), **ghm, step=self.step,
                                   dropout=networks.seed_states(*generators))

    def learning_rate(self, optimizer: str) -> LinearDecay | Callable[[], tf.Tensor]:
        """The schedule of an optimiser, read at its own update count (every optimiser updates once a step);
        the discriminators' (opt_D) starts from --D_learning_rate where given."""
        return self.lr_D if optimizer == "opt_D" else self.lr

    def compiled(self, fn: Callable) -> Callable:
        """`fn` compiled with XLA under --jit_compile; otherwise `fn` itself, traced into the step (a nested
        tf.function would be traced on its own and, under a tape, again as forward and backward copies)."""
        return tf.function(fn, jit_compile=True, autograph=False) if self.cfg.jit_compile else fn

    # --- pieces a step is made of --------------------------------------------------------------------

    def generate(self, G: keras.Model, x: tf.Tensor) -> tf.Tensor:
        """G(x) in training mode; with --recompute only x is kept for the backward pass."""
        if self.cfg.recompute:
            return tf.recompute_grad(lambda t: G(t, training=True))(x)
        return G(x, training=True)

    def average(self, per_example: tf.Tensor) -> tf.Tensor:
        return tf.nn.compute_average_loss(per_example, global_batch_size=self.global_batch)

    def gan(self, pred, real: bool, for_discriminator: bool = False) -> tf.Tensor:
        """The adversarial loss of D's output (adversarial.Adversarial.gan)."""
        return self.adversarial.gan(pred, real, for_discriminator)

    def discriminator_gan(self, D: str, real, fake) -> tuple[tf.Tensor, tf.Tensor]:
        """The adversarial terms of discriminator `D` on its real and fake outputs (Adversarial.discriminator)."""
        return self.adversarial.discriminator(D, real, fake)

    def discriminator_objective(self, D: keras.Model, real: tf.Tensor, fake: tf.Tensor,
                                seed: tf.Tensor) -> dict[str, tf.Tensor]:
        """D's loss terms on real and (detached) fake inputs: real, fake and penalty (Adversarial.objective)."""
        name = next(k for k, net in self.nets.items() if net is D)
        return self.adversarial.objective(D, name, real, fake, seed)

    def replica_seed(self, step: tf.Tensor) -> tf.Tensor:
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        return tf.stack([tf.cast(self.cfg.seed, tf.int64) * 7919 + tf.cast(replica, tf.int64), step])

    def replica_step(self, x: tf.Tensor, y: tf.Tensor, step: tf.Tensor) -> dict[str, tf.Tensor]:
        """One step on this replica's share of the batch; returns its share of each loss."""
        raise NotImplementedError

    def previews(self, x: tf.Tensor, y: tf.Tensor) -> dict[str, tuple[tf.Tensor, ...]]:
        """TensorBoard tag → images to show side by side (inputs, outputs, targets or reconstructions)."""
        raise NotImplementedError

    def make_train_step(self, strategy: tf.distribute.Strategy, element_spec=None) -> Callable:
        """The distributed step: (x, y) per-replica batches → global mean losses and a finiteness flag.
        `element_spec` (the distributed dataset's) fixes the signature, so that images of varying size
        (--preprocess none, scale_width) do not trace the step again for every new size. No autograph: the
        step has no Python control flow on tensors, and converting it costs seconds of start-up."""

        @tf.function(input_signature=element_spec, autograph=False)
        def train_step(x, y):
            self.begin_step(self.step.read_value())
            per_replica = strategy.run(self.replica_step, args=(x, y, self.step.read_value()))
            loss = {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in per_replica.items()}
            self.step.assign_add(1)
            loss["finite"] = tf.reduce_all([tf.math.is_finite(v) for v in loss.values()])
            return loss

        return train_step

    # --- facts about the state ---------------------------------------------------------------------

    def state_is_finite(self) -> tf.Tensor:
        """True when every weight and optimiser slot is finite: only such a state is worth saving. Eager:
        one small op per variable at each save costs less than tracing them."""
        variables = [v for n in self.nets.values() for v in n.weights]
        variables += [v for o in self.opts.values() for v in o.variables]
        floats = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
        return tf.reduce_all([tf.reduce_all(tf.math.is_finite(v)) for v in floats])

    def fingerprint(self) -> float:
        """Sum of |w| over every network's trainable weights: equal on workers that agree. (Batch norm's
        moving statistics are each worker's own, as in any data-parallel training.)"""
        return sum(float(tf.reduce_sum(tf.abs(v))) for n in self.nets.values() for v in n.trainable_variables)
