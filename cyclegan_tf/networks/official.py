"""Generators trained with the official PyTorch code, imported: junyanz's ResnetGenerator and UnetGenerator
(pytorch-CycleGAN-and-pix2pix: `latest_net_G.pth`, `*_net_G_A.pth`, the hosted CycleGAN and pix2pix models),
CUT/FastCUT's anti-aliased ResnetGenerator (contrastive-unpaired-translation) and pix2pixHD's GlobalGenerator
and LocalEnhancer (NVIDIA/pix2pixHD), from the state dicts that code saves, read without PyTorch (torch_file).

The architecture is read from the keys and shapes: the family from the module paths (`model.model.…` is a
U-Net, `conv_block` a residual one, `model1_1.…` a local enhancer), ngf and the channels from the first and
last convs, the stride-2 levels and residual blocks by counting, the norm from batch norms' running
statistics, CUT's anti-aliasing from its blur filters (`filt`). define_G builds the same network, whose
weighted layers come in the order of the official modules; each module's tensors go to the layer at its
place, and a kind or shape that differs, or a tensor left over, is one line naming it: never a partly loaded
network. Instance norms have no weights (affine=False, as the official code's); the running statistics that
files of 2017–2018 carry for them (`track_running_stats=True`, junyanz #529) are ignored, as the official
loader deletes them: at test time an instance norm always uses the image's own statistics.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import keras
import numpy as np

from cyclegan_tf.errors import UserError
from cyclegan_tf.networks.generators import define_G
from cyclegan_tf.networks.layers import precision
from cyclegan_tf.networks.torch_file import read_state_dict

# What a user may give to override what is read from the file (the names of define_G's arguments).
OVERRIDES = ("netG", "ngf", "norm", "use_dropout", "input_nc", "output_nc")
_RESNETS = {6: "resnet_6blocks", 9: "resnet_9blocks"}
_UNETS = {7: "unet_128", 8: "unet_256"}
# CUT's blur filters: Downsample's [1, 2, 1]⊗[1, 2, 1]/16 and Upsample's [1, 3, 3, 1]⊗[1, 3, 3, 1]/64·4.
_BLUR = {3: np.outer([1, 2, 1], [1, 2, 1]) / 16.0, 4: np.outer([1, 3, 3, 1], [1, 3, 3, 1]) / 16.0}


@dataclasses.dataclass(frozen=True)
class Architecture:
    """An official generator as define_G's arguments, and the model of ours that trains and exports it."""

    netG: str
    ngf: int
    norm: str
    input_nc: int
    output_nc: int
    use_dropout: bool = False
    antialias: bool = False
    antialias_up: bool = False
    sizes: tuple[tuple[str, int], ...] = ()  # pix2pixHD's n_downsample_global, n_blocks_global, …
    source: str = ""  # which official code's class: for messages and flags.json

    @property
    def family(self) -> str:
        """resnet, antialiased_resnet, unet, global or local: what a model declares it takes
        (Model.official_generators; models.for_official)."""
        if self.netG in ("global", "local"):
            return self.netG
        if self.netG.startswith("unet"):
            return "unet"
        return "antialiased_resnet" if self.antialias or self.antialias_up else "resnet"

    def define_G(self, name: str = "G") -> keras.Model:
        return define_G(self.netG, self.ngf, self.norm, "transpose", self.use_dropout, self.input_nc, self.output_nc,
                        name, self.antialias, self.antialias_up, **dict(self.sizes))

    def options(self) -> dict[str, object]:
        """This generator as train.py's options."""
        found = dict(netG=self.netG, ngf=self.ngf, norm=self.norm, use_dropout=self.use_dropout, upsample="transpose",
                     input_nc=self.input_nc, output_nc=self.output_nc, **dict(self.sizes))
        if self.netG.startswith("resnet"):  # CUT's options; other models have none of them
            found |= dict(no_antialias=not self.antialias, no_antialias_up=not self.antialias_up)
        return found

    def describe(self) -> str:
        extra = "".join(f", {k} {v}" for k, v in self.sizes)
        return (f"{self.source} ({self.netG}, ngf {self.ngf}, {self.norm} norm{', dropout' if self.use_dropout else ''}"
                f"{extra}, {self.input_nc} → {self.output_nc} channels)")


def read_file(path: str | Path) -> dict[str, np.ndarray]:
    """The state dict of a torch.save file; one line naming the file where it is not one."""
    try:
        state = read_state_dict(path)
    except OSError as e:
        raise UserError(f"{path}: cannot be read ({e.strerror or e})") from None
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    if state and all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k.removeprefix("module."): v for k, v in state.items()}
    return state


def import_generator(path: str | Path, name: str = "G", **given: object) -> tuple[keras.Model, Architecture]:
    """The generator of an official `.pth` file as a Keras model in float32, and its architecture (read from
    the file; `given` overrides any of OVERRIDES). UserError (one line, naming the file) for anything else."""
    state = read_file(path)
    try:
        arch = read_architecture(state, **given)
        with precision("fp32"):
            G = arch.define_G(name)
        load_weights(G, state, arch)
    except ValueError as e:
        raise UserError(f"{path}: {e}") from None
    return G, arch


def _modules(state: dict[str, np.ndarray]) -> list[tuple[str, dict[str, np.ndarray]]]:
    """The state dict grouped by module path, in the file's (the modules') order."""
    groups: dict[str, dict[str, np.ndarray]] = {}
    for key, value in state.items():
        prefix, _, name = key.rpartition(".")
        groups.setdefault(prefix, {})[name] = value
    return list(groups.items())


def _kind(prefix: str, tensors: dict[str, np.ndarray]) -> str:
    names = set(tensors)
    if names == {"filt"}:
        return "blur"
    if "weight" in names and names <= {"weight", "bias"} and tensors["weight"].ndim == 4:
        return "conv"
    if {"weight", "bias", "running_mean", "running_var"} <= names <= {"weight", "bias", "running_mean", "running_var",
                                                                      "num_batches_tracked"}:
        return "batch norm"
    if names <= {"running_mean", "running_var", "num_batches_tracked"}:
        return "instance norm statistics"
    if names == {"weight", "bias"} and tensors["weight"].ndim == 1:
        raise ValueError(f"{prefix}: an affine instance norm (scale and offset), which none of the official "
                         "generators has")
    raise ValueError(f"{prefix}: tensors {', '.join(sorted(names))} are not a layer of the official generators")


def read_architecture(state: dict[str, np.ndarray], **given: object) -> Architecture:
    """What define_G must build for `state`; ValueError naming what does not fit any official generator."""
    unknown = set(given) - set(OVERRIDES)
    if unknown:
        raise ValueError(f"cannot override {', '.join(sorted(unknown))} (only {', '.join(OVERRIDES)})")
    modules = [(p, t, _kind(p, t)) for p, t in _modules(state)]
    convs = [(p, t["weight"]) for p, t, k in modules if k == "conv"]
    if not convs:
        raise ValueError("holds no convolution weights: not a generator's state dict")
    prefixes = [p for p, _, _ in modules]
    try:
        arch = _family(modules, prefixes, convs)
    except (IndexError, StopIteration) as e:  # a layout that starts as an official one does, then is not one
        raise ValueError(f"its modules ({', '.join(prefixes[:3])}, …) follow no official generator's layout "
                         f"({type(e).__name__})") from None
    return dataclasses.replace(arch, **given)


def _family(modules: list, prefixes: list[str], convs: list) -> Architecture:
    norm = "batch" if any(k == "batch norm" for *_, k in modules) else "instance"
    if any(p.startswith("model1_1.") for p in prefixes):
        return _local(modules, norm)
    if any(p.startswith("model.model.") for p in prefixes):
        return _unet(convs, norm)
    if any(".conv_block." in p for p in prefixes):
        return _resnet(modules, norm)
    first = convs[0][1]
    what = ("a discriminator (4×4 convs down to 1 channel)" if convs[-1][1].shape[0] == 1 and first.shape[2] == 4
            else "no generator of the official code")
    raise ValueError(f"its modules ({', '.join(prefixes[:3])}, …) are {what}: import a generator's file "
                     "(latest_net_G.pth, *_net_G_A.pth, *_net_G_B.pth)")


def _index(prefix: str, root: str = "model") -> int:
    return int(prefix[len(root) + 1:].split(".")[0])


def _resnet_levels(modules: list, root: str) -> tuple[int, int, bool, bool, bool, list]:
    """(stride levels, residual blocks, dropout, blurred down, blurred up, the convs) of a residual
    nn.Sequential `root` (junyanz's, CUT's, pix2pixHD's global)."""
    top = [(p, t, k) for p, t, k in modules if p.startswith(root + ".") and p[len(root) + 1:].split(".")[0].isdigit()]
    blocks = sorted({_index(p, root) for p, _, _ in top if ".conv_block." in p})
    first, last = blocks[0], blocks[-1]
    convs = [(p, t["weight"]) for p, t, k in top if k == "conv" and ".conv_block." not in p]
    levels = sum(1 for p, _ in convs if _index(p, root) < first) - 1  # less the 7×7 stem
    dropout = any(re.search(r"\.conv_block\.6$", p) for p, _, k in top if k == "conv")
    blur_down = any(k == "blur" and _index(p, root) < first for p, _, k in top)
    blur_up = any(k == "blur" and _index(p, root) > last for p, _, k in top)
    return levels, len(blocks), dropout, blur_down, blur_up, convs


def _resnet(modules: list, norm: str) -> Architecture:
    levels, blocks, dropout, down, up, convs = _resnet_levels(modules, "model")
    stem, head = convs[0][1], convs[-1][1]
    common = dict(ngf=stem.shape[0], norm=norm, input_nc=stem.shape[1], output_nc=head.shape[0], use_dropout=dropout)
    if levels == 2 and blocks in _RESNETS:
        source = "CUT's anti-aliased ResnetGenerator" if down or up else "junyanz's ResnetGenerator"
        return Architecture(_RESNETS[blocks], antialias=down, antialias_up=up, source=source, **common)
    if down or up or levels == 2:
        raise ValueError(f"a ResnetGenerator of {blocks} residual blocks: the official ones (and ours) have 6 or 9")
    sizes = (("n_downsample_global", levels), ("n_blocks_global", blocks))
    return Architecture("global", sizes=sizes, source="pix2pixHD's GlobalGenerator", **common)


def _local(modules: list, norm: str) -> Architecture:
    enhancers = sorted({int(m.group(1)) for p, _, _ in modules if (m := re.match(r"model(\d+)_1\.", p))})
    n = enhancers[-1]
    levels, blocks, *_ = _resnet_levels(modules, "model")
    stem = next(t["weight"] for p, t, k in modules if p.startswith(f"model{n}_1.") and k == "conv")
    head = [t["weight"] for p, t, k in modules if p.startswith(f"model{n}_2.") and k == "conv"][-1]
    local_blocks = {p.split(".")[1] for p, _, _ in modules if p.startswith("model1_2.") and ".conv_block." in p}
    sizes = (("n_downsample_global", levels), ("n_blocks_global", blocks), ("n_local_enhancers", len(enhancers)),
             ("n_blocks_local", len(local_blocks)))
    return Architecture("local", stem.shape[0], norm, stem.shape[1], head.shape[0], sizes=sizes,
                        source="pix2pixHD's LocalEnhancer")


def _unet(convs: list, norm: str) -> Architecture:
    downs = len(convs) // 2
    if downs not in _UNETS:
        raise ValueError(f"a UnetGenerator of {downs} levels: the official ones (and ours) have 7 (unet_128) or "
                         "8 (unet_256)")
    first, last = convs[0][1], convs[-1][1]  # the outermost ConvTranspose2d's weight is [in, out, 4, 4]
    # Dropout has no weights, so the file cannot say; pix2pix trains with it (its default).
    return Architecture(_UNETS[downs], first.shape[0], norm, first.shape[1], last.shape[1], use_dropout=True,
                        source="junyanz's UnetGenerator")


def _weighted_layers(model: keras.Model) -> list[keras.layers.Layer]:
    """The layers with weights in the official modules' order: a nested model first (the LocalEnhancer's
    global generator, the official `model`, registered before `model1_1`), then the graph's order."""
    nested = [w for layer in model.layers if isinstance(layer, keras.Model) for w in _weighted_layers(layer)]
    return nested + [layer for layer in model.layers if isinstance(layer, (keras.layers.Conv2D,
                     keras.layers.Conv2DTranspose, keras.layers.BatchNormalization))]


def load_weights(model: keras.Model, state: dict[str, np.ndarray], arch: Architecture) -> None:
    """The official state dict's tensors into `model` (define_G of `arch`), all or none: every kind and shape
    is checked before the first weight is assigned."""
    modules = [(p, t, _kind(p, t)) for p, t in _modules(state)]
    for p, t, k in modules:
        if k == "blur":
            size = t["filt"].shape[-1]
            if size not in _BLUR or not np.allclose(t["filt"], _BLUR[size], atol=1e-6):
                raise ValueError(f"{p}.filt: not CUT's {size}×{size} blur filter")
    theirs = [(p, t, k) for p, t, k in modules if k in ("conv", "batch norm")]
    ours = _weighted_layers(model)
    said = arch.describe()
    assignments = []
    for i, layer in enumerate(ours):
        if i >= len(theirs):
            raise ValueError(f"has {len(theirs)} weighted layers where {said} has {len(ours)}: it ends before "
                             f"the layer {layer.name}")
        prefix, tensors, kind = theirs[i]
        assignments += _assignments(layer, prefix, tensors, kind, said)
    if len(theirs) > len(ours):
        raise ValueError(f"{theirs[len(ours)][0]}: left over: {said} has {len(ours)} weighted layers, the file "
                         f"{len(theirs)}")
    for variable, value in assignments:
        variable.assign(np.asarray(value, np.float32))  # files saved in half precision hold float16


def _assignments(layer: keras.layers.Layer, prefix: str, t: dict[str, np.ndarray], kind: str, said: str) -> list:
    if isinstance(layer, keras.layers.BatchNormalization):
        if kind != "batch norm":
            raise ValueError(f"{prefix}: a {kind} where {said} has a batch norm (give --norm)")
        pairs = [(layer.gamma, t["weight"]), (layer.beta, t["bias"]), (layer.moving_mean, t["running_mean"]),
                 (layer.moving_variance, t["running_var"])]
        expected = [tuple(v.shape) for v, _ in pairs]
        if any(tuple(value.shape) != shape for value, shape in zip((v for _, v in pairs), expected)):
            raise ValueError(f"{prefix}: a batch norm of {t['weight'].shape[0]} channels where {said} has "
                             f"{expected[0][0]}")
        return pairs
    if kind != "conv":
        raise ValueError(f"{prefix}: a {kind} where {said} has a convolution (give --norm)")
    weight = t["weight"]
    expected = tuple(layer.kernel.shape[i] for i in (3, 2, 0, 1))  # Keras' [kh, kw, in, out] in torch's order
    if weight.shape != expected:
        raise ValueError(f"{prefix}.weight: shape {tuple(weight.shape)} where {said} has {expected}")
    pairs = [(layer.kernel, weight.transpose(2, 3, 1, 0))]
    if layer.use_bias:  # a conv without a bias before a batch norm is one with a zero bias
        bias = t.get("bias", np.zeros(layer.bias.shape, np.float32))
        if tuple(bias.shape) != tuple(layer.bias.shape):
            raise ValueError(f"{prefix}.bias: shape {tuple(bias.shape)} where {said} has {tuple(layer.bias.shape)}")
        pairs.append((layer.bias, bias))
    elif "bias" in t:
        raise ValueError(f"{prefix}.bias: {said} has no bias there")
    return pairs


def label_options(arch: Architecture, label_nc: int = -1, no_instance: bool = False) -> dict[str, object]:
    """pix2pixHD's label inputs as train.py's options: `label_nc` classes (-1: the generator's input channels
    less the instance edge map's one, unless `no_instance`; 0: RGB inputs), given as a one-channel label map
    whose edge map is drawn from the classes (label_edges). Nothing for other generators."""
    if arch.netG not in ("global", "local") or label_nc == 0 or (label_nc < 0 and arch.input_nc == 3):
        return {}
    edges = not no_instance
    classes = arch.input_nc - edges if label_nc < 0 else label_nc
    if classes + edges != arch.input_nc:
        raise UserError(f"--label_nc={label_nc}{' --no_instance' if no_instance else ''}: the generator takes "
                        f"{arch.input_nc} channels, not {classes} classes{' + the edge map' if edges else ''}")
    return {"label_nc": classes, "label_edges": edges, "input_nc": 1}
