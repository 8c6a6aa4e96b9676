"""The generators: junyanz's ResNet and U-Net, CUT's anti-aliased ResNet, pix2pixHD's global generator and
local enhancer. Each is `define_G(netG, ...)`; every one maps [N, H, W, input_nc] in [-1, 1] to
[N, H, W, output_nc] in [-1, 1] (tanh, in float32).
"""
from __future__ import annotations

import keras

from cyclegan_tf.networks.blocks import (
    _conv,
    _lrelu,
    _normalize,
    _relu,
    _resnet_block,
    _rgb_head,
    _upsample,
    _zero_pad,
)
from cyclegan_tf.networks.features import feature_names
from cyclegan_tf.networks.layers import AvgPoolDown, BlurPool2D, BlurUpsample2D, Dropout, ReflectionPad2D, _check
from cyclegan_tf.options import GENERATORS, NORMS, UPSAMPLES

_RESNET_BLOCKS = {"resnet_9blocks": 9, "resnet_6blocks": 6}

_UNET_DOWNS = {"unet_256": 8, "unet_128": 7}

def default_netG(image_size: int) -> str:
    """The paper's choice: 6 residual blocks for 128×128 images, 9 for 256×256 and up."""
    return "resnet_9blocks" if image_size > 128 else "resnet_6blocks"

# pix2pixHD's coarse-to-fine generator sizes (the official defaults), for define_G's "global" and "local".
PIX2PIXHD_G = dict(n_downsample_global=4, n_blocks_global=9, n_local_enhancers=1, n_blocks_local=3)

def generator_multiple(netG: str, n_downsample_global: int = 4, n_local_enhancers: int = 1) -> int:
    """H and W must be divisible by this for `netG` to return the input's size."""
    _check("netG", netG, GENERATORS)
    if netG in ("global", "local"):
        return 2 ** (n_downsample_global + (n_local_enhancers if netG == "local" else 0))
    return 4 if netG in _RESNET_BLOCKS else 2 ** _UNET_DOWNS[netG]

def _resnet_generator(
    n_blocks, ngf, norm, upsample, use_dropout, input_nc, output_nc, name, antialias=False, antialias_up=False
):
    """Named features: `input_pad` (the padded input); `stem_conv`, `stem_norm`, `stem`; per downsampling
    level i = 1, 2: `down{i}_conv`, `down{i}_norm` and, where it is not the level's last layer,
    `down{i}_relu`, then `down{i}` (at 1/2 and 1/4 size: the ReLU, or with `antialias` the blur pool
    after a stride-1 conv, as CUT's generator); `block1`…`block{n_blocks}` (each residual sum), `up1`,
    `up2` and `output` (the tanh). `antialias_up` upsamples by CUT's blur then a 3×3 conv."""
    use_bias = norm != "batch"  # batch norm's offset makes a conv bias redundant
    inputs = keras.Input((None, None, input_nc))
    x = _conv(ngf, 7, use_bias=use_bias, name="stem_conv")(ReflectionPad2D(3, name="input_pad")(inputs))
    x = _relu(_normalize(x, norm, name="stem_norm"), name="stem")
    for i, mult in enumerate((2, 4), 1):
        x = _conv(ngf * mult, 3, 1 if antialias else 2, use_bias, name=f"down{i}_conv")(_zero_pad(x))
        x = _relu(_normalize(x, norm, name=f"down{i}_norm"), name=f"down{i}_relu" if antialias else f"down{i}")
        if antialias:
            x = BlurPool2D(name=f"down{i}")(x)
    for i in range(1, n_blocks + 1):
        x = _resnet_block(x, ngf * 4, norm, use_dropout, name=f"block{i}")
    for i, mult in enumerate((2, 1), 1):
        if antialias_up:
            x = BlurUpsample2D()(x)
            x = _conv(ngf * mult, 3, use_bias=use_bias)(_zero_pad(x))
        else:
            x = _upsample(x, ngf * mult, 3, upsample, use_bias)
        x = _relu(_normalize(x, norm), name=f"up{i}")
    return keras.Model(inputs, _rgb_head(x, output_nc), name=name)

def _global_generator(input_nc, output_nc, ngf, n_downsample, n_blocks, norm, upsample, name, head=True):
    """pix2pixHD's GlobalGenerator: a resnet generator with `n_downsample` stride-2 levels (4: a 1/16-size
    bottleneck of 16·ngf channels) and every conv biased (the official code's, even before a norm).
    Without `head` it ends at its last upsampling's features: the LocalEnhancer's global part.
    Named features: `stem`, `down1`…, `block1`…, `up1`… and `output`."""
    inputs = keras.Input((None, None, input_nc))
    x = _relu(_normalize(_conv(ngf, 7)(ReflectionPad2D(3)(inputs)), norm), name="stem")
    for i in range(1, n_downsample + 1):
        x = _relu(_normalize(_conv(ngf * 2**i, 3, 2)(_zero_pad(x)), norm), name=f"down{i}")
    for i in range(1, n_blocks + 1):
        x = _resnet_block(x, ngf * 2**n_downsample, norm, False, name=f"block{i}", use_bias=True)
    for i in range(1, n_downsample + 1):
        x = _relu(_normalize(_upsample(x, ngf * 2 ** (n_downsample - i), 3, upsample, True), norm), name=f"up{i}")
    return keras.Model(inputs, _rgb_head(x, output_nc) if head else x, name=name)

def _local_enhancer(input_nc, output_nc, ngf, norm, upsample, name, n_downsample_global, n_blocks_global,
                    n_local_enhancers, n_blocks_local):
    """pix2pixHD's LocalEnhancer. The global generator (ngf·2^n_local_enhancers filters, without its head;
    the nested model `global`, which --load_pretrain fills) runs on the input average-pooled to the
    coarsest scale. Enhancer n = 1…N, on the input at 1/2^(N−n) size: a 7×7 conv and a stride-2 conv,
    whose features are added to the previous net's last feature map, then `n_blocks_local` residual blocks
    and a 2× upsampling; the last enhancer ends with the RGB head."""
    inputs = keras.Input((None, None, input_nc))
    pyramid = [inputs]
    for _ in range(n_local_enhancers):
        pyramid.append(AvgPoolDown()(pyramid[-1]))
    x = _global_generator(input_nc, output_nc, ngf * 2**n_local_enhancers, n_downsample_global, n_blocks_global,
                          norm, upsample, "global", head=False)(pyramid[-1])
    for n in range(1, n_local_enhancers + 1):
        filters = ngf * 2 ** (n_local_enhancers - n)
        y = _relu(_normalize(_conv(filters, 7)(ReflectionPad2D(3)(pyramid[n_local_enhancers - n])), norm))
        y = _relu(_normalize(_conv(2 * filters, 3, 2)(_zero_pad(y)), norm))
        x = keras.layers.Add()([y, x])
        for _ in range(n_blocks_local):
            x = _resnet_block(x, 2 * filters, norm, False, use_bias=True)
        x = _relu(_normalize(_upsample(x, filters, 3, upsample, True), norm), name=f"enhancer{n}")
    return keras.Model(inputs, _rgb_head(x, output_nc), name=name)

def official_layer_names(model: keras.Model, antialias: bool) -> list[str]:
    """The names of a resnet generator's layers at the indices of the official PyTorch `nn.Sequential`
    (CUT's `--nce_layers 0,4,8,12,16` count those), through its last residual block. A norm that is
    an identity (`--norm none`) has no layer: its index names the conv before it, whose output it is."""
    have = set(feature_names(model))
    names = ["input_pad", "stem_conv", "stem_norm", "stem"]
    for i in (1, 2):
        level = [f"down{i}_conv", f"down{i}_norm", f"down{i}_relu", f"down{i}"]
        names += level if antialias else [level[0], level[1], level[3]]
    names += [n for n in feature_names(model) if n.startswith("block")]
    return [n if n in have else names[k - 1] for k, n in enumerate(names)]

def _unet_generator(
    num_downs, ngf, norm, upsample, use_dropout, input_nc, output_nc, name
):
    """The official UnetSkipConnectionBlock recursion, unrolled.

    Block i (0 = outermost) downsamples to filters[i] and, on the way up,
    returns to filters[i - 1] and concatenates its own input (the skip).

    Named features, with N = num_downs: `down1`…`downN`, each encoder level's
    output at 1/2 … 1/2^N size (what its skip carries, before the next level's
    LeakyReLU); `up1`…`up{N-1}`, each decoder level's output from the
    innermost out, `upK` being the concatenation with `down{N-K}`'s skip at
    that level's size; and `output` (the tanh), where the last level ends.
    """
    use_bias = norm != "batch"
    filters = [ngf * min(2**i, 8) for i in range(num_downs)]
    inputs = keras.Input((None, None, input_nc))
    x, skips = inputs, []
    for i, f in enumerate(filters):
        if i > 0:
            x = _lrelu(x)
        # No norm on raw pixels, nor on the 1×1 bottleneck (it would zero it);
        # the level's name goes on whichever layer ends it.
        normed = 0 < i < num_downs - 1 and norm != "none"
        x = _conv(f, 4, 2, use_bias, name=None if normed else f"down{i + 1}")(_zero_pad(x))
        if normed:
            x = _normalize(x, norm, name=f"down{i + 1}")
        skips.append(x)
    for i in range(num_downs - 1, 0, -1):
        x = _upsample(_relu(x), filters[i - 1], 4, upsample, use_bias)
        x = _normalize(x, norm)
        if (
            use_dropout and 4 <= i < num_downs - 1
        ):  # the num_downs - 5 inner 8ngf blocks
            x = Dropout(0.5)(x)
        x = keras.layers.Concatenate(name=f"up{num_downs - i}")([skips[i - 1], x])
    x = _upsample(_relu(x), output_nc, 4, upsample, use_bias=True)
    outputs = keras.layers.Activation("tanh", dtype="float32", name="output")(x)
    return keras.Model(inputs, outputs, name=name)

def define_G(
    netG: str = "resnet_9blocks",
    ngf: int = 64,
    norm: str = "instance",
    upsample: str = "transpose",
    use_dropout: bool = False,
    input_nc: int = 3,
    output_nc: int = 3,
    name: str = "G",
    antialias: bool = False,
    antialias_up: bool = False,
    **pix2pixhd: int,
) -> keras.Model:
    """A generator mapping [N, H, W, input_nc] images to [N, H, W, output_nc] in [-1, 1]. `antialias`
    and `antialias_up` (resnet generators only) are CUT's blurred down- and upsampling; "global" and
    "local" are pix2pixHD's, sized by the keyword arguments of PIX2PIXHD_G (its defaults where not given)."""
    _check("netG", netG, GENERATORS)
    _check("norm", norm, NORMS)
    _check("upsample", upsample, UPSAMPLES)
    if netG in ("global", "local"):
        sizes = {**PIX2PIXHD_G, **pix2pixhd}
        if netG == "global":
            model = _global_generator(input_nc, output_nc, ngf, sizes["n_downsample_global"],
                                      sizes["n_blocks_global"], norm, upsample, name)
        else:
            model = _local_enhancer(input_nc, output_nc, ngf, norm, upsample, name, **sizes)
        model.input_multiple = generator_multiple(netG, sizes["n_downsample_global"], sizes["n_local_enhancers"])
        return model
    args = (ngf, norm, upsample, use_dropout, input_nc, output_nc, name)
    if netG in _RESNET_BLOCKS:
        return _resnet_generator(_RESNET_BLOCKS[netG], *args, antialias, antialias_up)
    if antialias or antialias_up:
        raise ValueError(f"netG {netG!r} has no anti-aliased variant; use a resnet generator.")
    return _unet_generator(_UNET_DOWNS[netG], *args)
