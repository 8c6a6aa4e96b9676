"""Training options: one dataclass, from which train.py defines its flags and flags.json is written.

Defaults follow the paper's code (SPEC §1–2); names follow vanhuyz's train.py where he had one.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from cyclegan_tf import atomic
from cyclegan_tf.errors import UserError

# Changing these on resume would not fit the saved weights (image_size and pool_size: the pools' shape;
# precision: fp16 adds loss-scale state to the optimisers).
ARCHITECTURE = ("model", "netG", "netD", "ngf", "ndf", "n_layers_D", "norm", "upsample", "use_dropout", "image_size",
                "pool_size", "direction", "precision")
# The official code's defaults for pix2pix where they differ from CycleGAN's; flags given explicitly win.
MODEL_DEFAULTS = {"pix2pix": dict(netG="unet_256", norm="batch", gan_mode="vanilla", use_dropout=True, pool_size=0)}


def _f(default, help: str, choices: tuple | None = None):  # noqa: A002 - mirrors absl's name
    return field(default=default, metadata={"help": help, "choices": choices})


@dataclass
class TrainConfig:
    X: str = _f("", "TFRecord file (or shards) of domain X.")
    Y: str = _f("", "TFRecord file (or shards) of domain Y.")
    model: str = _f("cycle_gan", "cycle_gan (unpaired --X and --Y) | pix2pix (pairs in --X from build_data.py "
                    "--paired; defaults become --netG unet_256 --norm batch --gan_mode vanilla --use_dropout "
                    "--pool_size 0).", ("cycle_gan", "pix2pix"))
    direction: str = _f("AtoB", "pix2pix: translate a pair's first image (A) to its second (B), or BtoA.",
                        ("AtoB", "BtoA"))
    checkpoint_dir: str = _f("", "Run folder (default checkpoints/<YYYYmmdd-HHMM>); an existing one resumes.")
    load_model: str = _f("", "Resume this run (a folder, or a run name under checkpoints/).")
    # Networks
    netG: str = _f("", "resnet_9blocks | resnet_6blocks | unet_256 | unet_128 (default: 9 blocks above "
                   "128 px, 6 at 128 and below).", ("", "resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128"))
    netD: str = _f("basic", "basic (70×70 PatchGAN) | n_layers | pixel.", ("basic", "n_layers", "pixel"))
    n_layers_D: int = _f(3, "Layers of the n_layers discriminator.")
    ngf: int = _f(64, "Generator filters in the first conv layer.")
    ndf: int = _f(64, "Discriminator filters in the first conv layer.")
    norm: str = _f("instance", "instance | batch | none.", ("instance", "batch", "none"))
    upsample: str = _f("transpose", "transpose | resize (resize-conv, against checkerboard artifacts).",
                       ("transpose", "resize"))
    use_dropout: bool = _f(False, "Dropout 0.5 in the generator (pix2pix uses it; CycleGAN does not).")
    # Losses
    gan_mode: str = _f("lsgan", "lsgan | vanilla | wgangp.", ("lsgan", "vanilla", "wgangp"))
    use_lsgan: bool = _f(True, "vanhuyz's flag: --nouse_lsgan means --gan_mode vanilla.")
    real_label: float = _f(1.0, "Target for real images (vanhuyz used 0.9).")
    lambda1: float = _f(10.0, "Weight of the cycle loss X → Y → X.")
    lambda2: float = _f(10.0, "Weight of the cycle loss Y → X → Y.")
    lambda_identity: float = _f(0.5, "Identity loss weight, times lambda1/lambda2; 0 skips its forward passes.")
    lambda_gp: float = _f(10.0, "Gradient penalty weight (wgangp).")
    lambda_L1: float = _f(100.0, "pix2pix: weight of the L1 distance between output and target.")
    pool_size: int = _f(50, "Past fakes kept per domain for the discriminators; 0 disables the pool.")
    # Optimisation
    learning_rate: float = _f(2e-4, "Adam learning rate.")
    beta1: float = _f(0.5, "Adam beta1.")
    beta2: float = _f(0.999, "Adam beta2.")
    epochs: int = _f(100, "Epochs at the initial learning rate (an epoch is max(|X|, |Y|) images).")
    epochs_decay: int = _f(100, "Epochs of linear decay to 0 after that.")
    max_steps: int = _f(0, "If > 0: train this many steps instead; the decay keeps its share of the run.")
    batch_size: int = _f(1, "Global batch size (split across replicas).")
    # Data
    image_size: int = _f(256, "Crop size: training images are image_size × image_size (vanhuyz's flag).")
    load_size: int = _f(0, "Resize to this before cropping (default image_size · 286/256).")
    preprocess: str = _f("resize_and_crop", "resize_and_crop | crop | scale_width | scale_width_and_crop | none.",
                         ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none"))
    no_flip: bool = _f(False, "No random horizontal flips.")
    seed: int = _f(0, "Seed of data order, augmentation, the image pool and weight initialisation.")
    # Running
    strategy: str = _f("auto", "auto | default | mirrored | multi_worker.", ("auto", "default", "mirrored",
                                                                           "multi_worker"))
    precision: str = _f("fp32", "fp32 | bf16 | fp16: the networks compute in this type (Keras mixed precision); "
                        "weights, norm statistics, losses and the optimiser stay fp32; fp16 scales the loss.",
                        ("fp32", "bf16", "fp16"))
    recompute: bool = _f(False, "Gradient checkpointing: keep only each generator call's input and recompute its "
                         "activations in the backward pass (less memory, about a third more generator compute).")
    jit_compile: bool = _f(False, "Compile the forward and backward passes with XLA.")
    deterministic: bool = _f(False, "Deterministic ops (bit-identical reruns; slower).")
    save_every: int = _f(1000, "Checkpoint every this many steps (and at least every 10 minutes).")
    summary_every: int = _f(100, "TensorBoard images every this many steps.")
    log_every: int = _f(10, "Loss scalars, log line and NaN check every this many steps.")
    keep_checkpoints: int = _f(3, "Checkpoints to keep.")

    def changed(self) -> set[str]:
        """Options that differ from their defaults (what a caller of the Python API chose)."""
        return {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != f.default}

    def with_model_defaults(self, explicit: set[str]) -> TrainConfig:
        """The model's own defaults (pix2pix differs from CycleGAN) for options not given explicitly."""
        defaults = MODEL_DEFAULTS.get(self.model, {})
        return dataclasses.replace(self, **{k: v for k, v in defaults.items() if k not in explicit})

    def resolved(self) -> TrainConfig:
        """Fills the defaults that depend on other options."""
        c = dataclasses.replace(self)
        if not c.netG:
            from cyclegan_tf.networks import default_netG

            c.netG = default_netG(c.image_size)
        if not c.load_size:
            c.load_size = round(c.image_size * 286 / 256)
        if not c.use_lsgan and c.gan_mode == "lsgan":
            c.gan_mode = "vanilla"
        return c

    def generator_kwargs(self) -> dict:
        """networks.define_G arguments (of a resolved config)."""
        return dict(netG=self.netG, ngf=self.ngf, norm=self.norm, upsample=self.upsample, use_dropout=self.use_dropout)

    def save(self, path: Path) -> None:
        atomic.write_text(path, json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> dict:
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: unreadable flags file ({e})") from None
        names = {f.name for f in dataclasses.fields(cls)}
        return {k: v for k, v in saved.items() if k in names}

    def check_resume(self, saved: dict, explicit: set[str]) -> TrainConfig:
        """Options for a resumed run: saved values, except those the user set now; architecture must match."""
        for name in ARCHITECTURE:
            if name in explicit and name in saved and getattr(self, name) != saved[name]:
                raise UserError(f"--{name}={getattr(self, name)} does not match the run being resumed "
                                f"(it was trained with --{name}={saved[name]})")
        merged = {**saved, **{k: getattr(self, k) for k in explicit},
                  "checkpoint_dir": self.checkpoint_dir, "load_model": self.load_model}
        return dataclasses.replace(self, **merged)
