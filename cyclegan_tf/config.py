"""Training options: one dataclass, from which train.py defines its flags and flags.json is written.

Defaults follow the paper's code (junyanz/pytorch-CycleGAN-and-pix2pix's options); names follow vanhuyz's
train.py where he had one. Options a model adds of its own (`Model.options`) live in `extra` and are read
as attributes like the others.
`validate()` checks every value before anything is written, so a corrected command is never refused.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cyclegan_tf import atomic, options
from cyclegan_tf.data.pixels import parse_bands, parse_range
from cyclegan_tf.errors import UserError

# Changing these on resume would not fit the saved weights (image_size and pool_size: the pools' shape;
# precision: fp16 adds loss-scale state to the optimisers; ghm_bins: the GHM-C statistics' shape).
# input_nc/output_nc: the first and last layers' shapes; the ranges: what the weights' values mean.
ARCHITECTURE = ("model", "netG", "netD", "num_D", "ngf", "ndf", "n_layers_D", "norm", "upsample", "use_dropout",
                "image_size", "pool_size", "direction", "precision", "ghm_bins", "input_nc", "output_nc", "X_range",
                "Y_range")


def _f(default, help: str, choices: tuple | None = None, valid: str | None = None):  # noqa: A002 - absl's name
    """An option: its default, help, and the values it takes (`choices`, or `valid`, an interval such as
    "[1, inf)" or "(0, 1]"), which `validate` checks and docs/flags.md lists."""
    return field(default=default, metadata={"help": help, "choices": choices, "valid": valid})


@dataclass
class TrainConfig:
    X: str = _f("", "TFRecord file (or shards) of domain X.")
    Y: str = _f("", "TFRecord file (or shards) of domain Y.")
    model: str = _f("", "The model to train (docs/models.md): cycle_gan (the default; unpaired --X and --Y), "
                    "pix2pix (pairs in --X from build_data.py --paired), or a registered plug-in. Each model sets "
                    "its own defaults for options not given.")
    direction: str = _f("AtoB", "Paired models: translate a pair's first image (A) to its second (B), or BtoA.",
                        options.DIRECTIONS)
    checkpoint_dir: str = _f("", "Run folder (default checkpoints/<YYYYmmdd-HHMM>); an existing one resumes.")
    load_model: str = _f("", "Resume this run (a folder, or a run name under checkpoints/).")
    from_pytorch: str = _f("", "A new run starts from generators trained with the official PyTorch code: their .pth "
                           "files, comma-separated, in the order of the model's generators (cycle_gan: G_A then G_B, "
                           "i.e. G: X→Y then F: Y→X; pix2pix and cut: G). Their architecture is the run's where not "
                           "given (docs/importing.md).")
    # Networks
    netG: str = _f("", "resnet_9blocks | resnet_6blocks | unet_256 | unet_128 (default: 9 blocks above "
                   "128 px, 6 at 128 and below) | global | local (pix2pixHD's).", ("", *options.GENERATORS))
    netD: str = _f("basic", "basic (70×70 PatchGAN) | n_layers | pixel | multiscale (pix2pixHD's: --num_D "
                   "PatchGANs of --n_layers_D layers at 1, 1/2, 1/4… size).", options.DISCRIMINATORS)
    num_D: int = _f(2, "Scales of the multiscale discriminator.", valid="[1, 5]")
    n_layers_D: int = _f(3, "Layers of the n_layers and multiscale discriminators.",
                         valid=f"[1, {options.MAX_LAYERS_D}]")
    ngf: int = _f(64, "Generator filters in the first conv layer.", valid="[1, inf)")
    ndf: int = _f(64, "Discriminator filters in the first conv layer.", valid="[1, inf)")
    norm: str = _f("instance", "instance | batch | none.", options.NORMS)
    upsample: str = _f("transpose", "transpose | resize (resize-conv, against checkerboard artifacts).",
                       options.UPSAMPLES)
    use_dropout: bool = _f(False, "Dropout 0.5 in the generator (pix2pix uses it; CycleGAN does not).")
    # Losses
    gan_mode: str = _f("lsgan", "lsgan | vanilla | wgangp | focal | ghmc. focal (Lin et al. 2017) and ghmc "
                       "(GHM-C, Li et al. 2019) change D's loss only; G's is then vanilla's non-saturating BCE.",
                       options.GAN_MODES)
    use_lsgan: bool = _f(True, "vanhuyz's flag: --nouse_lsgan means --gan_mode vanilla.")
    real_label: float = _f(1.0, "Target for real images, in (0, 1] (vanhuyz used 0.9).", valid="(0, 1]")
    lambda1: float = _f(10.0, "Weight of the cycle loss X → Y → X.", valid="[0, inf)")
    lambda2: float = _f(10.0, "Weight of the cycle loss Y → X → Y.", valid="[0, inf)")
    lambda_identity: float = _f(0.5, "Identity loss weight, times lambda1/lambda2; 0 skips its forward passes.",
                                valid="[0, inf)")
    lambda_gp: float = _f(10.0, "Gradient penalty weight (wgangp).", valid="[0, inf)")
    focal_gamma: float = _f(2.0, "--gan_mode focal: focusing parameter γ ≥ 0 of (1 − p_t)^γ (0: α-weighted BCE).",
                            valid="[0, inf)")
    focal_alpha: float = _f(0.5, "--gan_mode focal: weight α of the real term (1 − α of the fake one), in (0, 1).",
                            valid="(0, 1)")
    ghm_bins: int = _f(10, "--gan_mode ghmc: equal bins of the gradient norm |σ(logit) − target| over [0, 1].",
                       valid="[1, inf)")
    ghm_momentum: float = _f(0.75, "--gan_mode ghmc: momentum of the bins' running counts, in [0, 1) (0: this "
                             "step's counts).", valid="[0, 1)")
    lambda_L1: float = _f(100.0, "pix2pix: weight of the L1 distance between output and target.", valid="[0, inf)")
    lambda_feat: float = _f(0.0, "Weight of the discriminator feature-matching loss (pix2pixHD's; 0: off). Paired "
                            "models match features per location, unpaired ones their spatial means.", valid="[0, inf)")
    pool_size: int = _f(50, "Past fakes kept per domain for the discriminators; 0 disables the pool.", valid="[0, inf)")
    # Optimisation
    learning_rate: float = _f(2e-4, "Adam learning rate.", valid="(0, inf)")
    D_learning_rate: float = _f(0.0, "The discriminators' Adam learning rate (0: --learning_rate); below it slows a "
                                "D that wins (two time-scales, Heusel et al. 2017).", valid="[0, inf)")
    beta1: float = _f(0.5, "Adam beta1.", valid="[0, 1)")
    beta2: float = _f(0.999, "Adam beta2.", valid="[0, 1)")
    adam_eps: float = _f(1e-8, "Adam epsilon, added after bias correction as in PyTorch's Adam (the official code).",
                         valid="(0, inf)")
    epochs: int = _f(100, "Epochs at the initial learning rate (an epoch is max(|X|, |Y|) images).", valid="[0, inf)")
    epochs_decay: int = _f(100, "Epochs of linear decay to 0 after that.", valid="[0, inf)")
    max_steps: int = _f(0, "If > 0: train this many steps instead; the decay keeps its share of the run.",
                        valid="[0, inf)")
    batch_size: int = _f(1, "Global batch size (split across replicas).", valid="[1, inf)")
    # Data
    image_size: int = _f(256, "Crop size: training images are image_size × image_size (vanhuyz's flag).",
                         valid="[1, inf)")
    load_size: int = _f(0, "Resize to this before cropping (default image_size · 286/256).", valid="[0, inf)")
    preprocess: str = _f("resize_and_crop", "resize_and_crop | crop | scale_width | scale_width_and_crop | none.",
                         options.PREPROCESS)
    no_flip: bool = _f(False, "No random horizontal flips.")
    seed: int = _f(0, "Seed of data order, augmentation, the image pool and weight initialisation.")
    # Pixels (docs/data.md): read from the records and kept in flags.json; given, the channels must match them.
    input_nc: int = _f(0, "Channels of X (a paired model's input): 0 takes them from the records.", valid="[0, 64]")
    output_nc: int = _f(0, "Channels of Y (a paired model's target): 0 takes them from the records.", valid="[0, 64]")
    X_range: str = _f("", "Values of X mapped to the networks' [-1, 1]: lo,hi, or lo,hi;lo,hi;… per channel "
                      "(default: the range build_data.py stored in the records). Values outside are clipped.")
    Y_range: str = _f("", "As --X_range, for Y.")
    X_dtype: str = _f("", "Type of X's images (default: the records'): the type exports write translations into X "
                      "in.", ("", "uint8", "uint16", "float32"))
    Y_dtype: str = _f("", "As --X_dtype, for Y.", ("", "uint8", "uint16", "float32"))
    display_bands: str = _f("", "Bands shown as red, green and blue in previews and reports for images of more than "
                            "3 channels, e.g. 3,2,1 (default 0,1,2); grey images are shown grey.")
    # Running
    strategy: str = _f("auto", "auto | default | mirrored | multi_worker.", options.STRATEGIES)
    precision: str = _f("fp32", "fp32 | bf16 | fp16: the networks compute in this type (Keras mixed precision); "
                        "weights, norm statistics, losses and the optimiser stay fp32; fp16 scales the loss.",
                        options.PRECISIONS)
    recompute: bool = _f(False, "Gradient checkpointing: keep only each generator call's input and recompute its "
                         "activations in the backward pass (less memory, about a third more generator compute).")
    jit_compile: bool = _f(False, "Compile the forward and backward passes with XLA.")
    deterministic: bool = _f(False, "Deterministic ops (bit-identical reruns; slower).")
    save_every: int = _f(1000, "Checkpoint every this many steps (and at least every 10 minutes).", valid="[1, inf)")
    summary_every: int = _f(100, "TensorBoard images every this many steps.", valid="[1, inf)")
    log_every: int = _f(10, "Loss scalars, log line and NaN check every this many steps.", valid="[1, inf)")
    keep_checkpoints: int = _f(3, "Checkpoints this session keeps (it never deletes an earlier session's).",
                               valid="[1, inf)")
    restart: bool = _f(False, "Train from step 0 in a run folder whose checkpoints cannot be read (they stay until "
                       "overwritten); refused where an intact checkpoint exists.")
    # Evaluation during training (cyclegan_tf/evaluation/during_training.py)
    eval_every: int = _f(0, "Evaluate on the held-out set every this many steps, and at the end (0: never).")
    eval_every_epochs: int = _f(0, "Evaluate every this many epochs instead of --eval_every.")
    eval_X: str = _f("", "Held-out images of X (a TFRecord file or a folder; a paired model's pairs: "
                     "build_data.py --paired records).")
    eval_Y: str = _f("", "Held-out images of Y (a TFRecord file or a folder).")
    eval_truth_X: str = _f("", "Ground truth of F(--eval_Y): X images named as --eval_Y's (PSNR/SSIM).")
    eval_truth_Y: str = _f("", "Ground truth of G(--eval_X): Y images named as --eval_X's (PSNR/SSIM).")
    eval_labels_X: str = _f("", "X images are label maps of this palette ('R,G,B;…' or a JSON file, class 0 first): "
                            "translations into X are also scored with the FCN protocol against their truth.")
    eval_labels_Y: str = _f("", "As --eval_labels_X, for Y (a paired model's targets).")
    eval_images: int = _f(0, "Use at most this many held-out images per domain (0: all).")
    keep_best: str = _f("", "Keep the checkpoint that scores best on this, e.g. fid_XtoY, kid_YtoX, "
                        "coverage_XtoY, psnr_XtoY (default: fid of the first direction); 'none' keeps none.")
    patience: int = _f(0, "Stop the run after this many evaluations in a row without a better --keep_best score "
                       "(0: train to the end of the schedule); the best checkpoint is kept for --checkpoint best.",
                       valid="[0, inf)")
    # The chosen model's own options (Model.options), by name.
    extra: dict = field(default_factory=dict, metadata={"help": "", "choices": None})

    def __getattr__(self, name: str) -> Any:
        extra = self.__dict__.get("extra") or {}
        if name in extra:
            return extra[name]
        raise AttributeError(f"TrainConfig has no option {name!r}")

    def changed(self) -> set[str]:
        """Options that differ from their defaults (what a caller of the Python API chose)."""
        common = {f.name for f in fields() if getattr(self, f.name) != f.default}
        return common | set(self.extra)

    def resolved(self) -> TrainConfig:
        """Fills the defaults that depend on other options."""
        c = dataclasses.replace(self, extra=dict(self.extra))
        if not c.netG:
            c.netG = "resnet_9blocks" if c.image_size > 128 else "resnet_6blocks"  # the paper's choice
        if not c.load_size:
            c.load_size = round(c.image_size * 286 / 256)
        if not c.use_lsgan and c.gan_mode == "lsgan":
            c.gan_mode = "vanilla"
        return c

    def validate(self) -> None:
        """One-line UserError for the first value that cannot work: each option's type, choices and range
        (from its field), then the rules between options."""
        for f in fields():
            value, choices = getattr(self, f.name), f.metadata["choices"]
            _check_type(f.name, value, f.default)
            if choices and value not in choices:
                raise UserError(f"--{f.name}={value}: choose one of {', '.join(c for c in choices if c)}")
            if f.metadata["valid"]:
                check_interval(f.name, value, f.metadata["valid"])
        for d in "XY":
            if getattr(self, f"{d}_range"):
                text = getattr(self, f"{d}_range")
                parse_range(text, text.count(";") + 1, f"--{d}_range")
        parse_bands(self.display_bands)
        if self.netD == "multiscale" and self.image_size < 2 ** (self.num_D + self.n_layers_D - 1):
            raise UserError(f"--num_D={self.num_D} with --n_layers_D={self.n_layers_D} needs images of at least "
                            f"{2 ** (self.num_D + self.n_layers_D - 1)} px (--image_size={self.image_size})")
        if self.netD == "n_layers" and self.image_size < 3 * 2 ** self.n_layers_D:
            raise UserError(f"--n_layers_D={self.n_layers_D} needs images of at least {3 * 2 ** self.n_layers_D} px "
                            f"(--image_size={self.image_size})")
        if self.gan_mode == "focal" and self.real_label != 1:
            raise UserError(f"--real_label={self.real_label}: --gan_mode focal needs hard labels (--real_label 1)")
        if self.gan_mode == "ghmc" and self.jit_compile and self.strategy != "default":
            # the bin counts are all-reduced inside D's step, which XLA compiles: no synchronisation there
            raise UserError("--gan_mode ghmc with --jit_compile: its statistics are summed over replicas inside the "
                            "compiled step; give --strategy default (one device) or drop --jit_compile")
        if self.max_steps == 0 and self.epochs + self.epochs_decay == 0:
            raise UserError("--epochs and --epochs_decay are both 0: nothing to train (or give --max_steps)")
        if self.pool_size > 0 and self.preprocess in ("scale_width", "none"):
            raise UserError(f"--preprocess={self.preprocess} gives images of varying size; it needs --pool_size=0")
        if self.preprocess in ("resize_and_crop", "scale_width_and_crop") and 0 < self.load_size < self.image_size:
            raise UserError(f"--load_size={self.load_size} is smaller than the crop --image_size={self.image_size}")

    def as_flags(self) -> dict[str, Any]:
        """Every option by name, the model's own beside the common ones (the form of flags.json)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "extra"} | self.extra

    def save(self, path: Path) -> None:
        atomic.write_text(path, json.dumps(self.as_flags(), indent=2, sort_keys=True) + "\n")

    @classmethod
    def load(cls, path: Path) -> dict:
        """The saved options as keyword arguments: common ones by name, the model's own under `extra`."""
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"{path}: unreadable flags file ({e})") from None
        if not isinstance(saved, dict):
            raise UserError(f"{path}: not a flags file (expected a JSON object)")
        names = {f.name for f in fields()}
        return {k: v for k, v in saved.items() if k in names} | {"extra": {k: v for k, v in saved.items()
                                                                          if k not in names and k != "extra"}}

    def check_resume(self, saved: dict, explicit: set[str]) -> TrainConfig:
        """Options for a resumed run: saved values, except those the user set now; architecture must match."""
        for name in ARCHITECTURE:
            if name in explicit and name in saved and getattr(self, name) != saved[name]:
                raise UserError(f"--{name}={getattr(self, name)} does not match the run being resumed "
                                f"(it was trained with --{name}={saved[name]})")
        common = {k: getattr(self, k) for k in explicit if k in {f.name for f in fields()}}
        extra = {**saved.get("extra", {}), **{k: v for k, v in self.extra.items() if k in explicit}}
        merged = {**saved, **common, "extra": extra, "checkpoint_dir": self.checkpoint_dir,
                  "load_model": self.load_model, "restart": self.restart}
        return dataclasses.replace(self, **merged)


def fields() -> tuple[dataclasses.Field, ...]:
    """The common options (every field but `extra`)."""
    return tuple(f for f in dataclasses.fields(TrainConfig) if f.name != "extra")


def _check_type(name: str, value: Any, default: Any) -> None:
    kind = type(default)
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise UserError(f"--{name}={value!r}: expected {'a number' if kind is float else kind.__name__}")


def check_interval(name: str, value: float, interval: str) -> None:
    """One-line UserError unless `value` lies in `interval` ("[1, inf)", "(0, 1]"…); NaN lies in none."""
    low, high = (float(v) for v in interval[1:-1].split(","))
    inside = (value > low if interval[0] == "(" else value >= low) and (
        value < high if interval[-1] == ")" else value <= high)
    if inside:
        return
    if math.isinf(value):
        says = f"must be a finite number in {interval}"
    elif high == math.inf:
        says = "must be positive" if interval[0] == "(" and low == 0 else f"must be at least {low:g}"
    elif interval[0] + interval[-1] == "[]":
        says = f"must be between {low:g} and {high:g}"
    else:
        says = f"must be in {interval}"
    raise UserError(f"--{name}={value}: {says}")
