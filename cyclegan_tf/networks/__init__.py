"""The networks of CycleGAN (Zhu et al., 2017) and its family: generators, discriminators, and the layers and
inference kernels they are built of.

G: X→Y and F: Y→X are generators; D_Y judges G's outputs, D_X judges F's.

Architectures, initialisation and defaults follow the official junyanz/pytorch-CycleGAN-and-pix2pix code
(CUT's from taesungp/contrastive-unpaired-translation, pix2pixHD's from NVIDIA/pix2pixHD). Models are
channels-last, accept any (H, W) (see `generator_multiple`) and expect inputs in [-1, 1]. Generators end in
tanh; discriminators return raw scores of shape [N, h, w, 1]. The final layers compute in float32 so
mixed-precision policies can be used as is.

Layers whose outputs later models read (CUT's PatchNCE layers, pix2pixHD's feature matching) have stable
names, listed by `feature_names` and read by `named_features`; the rest keep Keras' automatic names.

| module | holds |
|---|---|
| `generators` | `define_G`: ResNet, U-Net, pix2pixHD's global generator and local enhancer |
| `discriminators` | `define_D`: PatchGAN, pix2pixHD's multi-scale D |
| `features` | features by name; CUT's projection heads H (`define_patch_mlp`) |
| `layers` | pads, norms, blurred sampling, label encoder; precision and initialisation |
| `blocks` | the conv/norm/upsampling blocks generators and discriminators share |
| `kernels` | faster inference forms of the same convs (Winograd, sub-pixel) |
| `statistics` | norm statistics shared across the tiles of a large image |
| `official` | generators trained with the official PyTorch code, imported from their `.pth` files |
| `torch_file` | reading `torch.save` and TorchScript files without PyTorch |
"""
from cyclegan_tf.networks.discriminators import OneScale, define_D
from cyclegan_tf.networks.features import define_patch_mlp, feature_names, generator_features, named_features
from cyclegan_tf.networks.generators import (
    PIX2PIXHD_G,
    default_netG,
    define_G,
    generator_multiple,
    official_layer_names,
)
from cyclegan_tf.networks.kernels import SubpixelConv2D, WinogradConv2D, direct_convs, winograd_conv3x3
from cyclegan_tf.networks.layers import (
    INIT_TYPES,
    POLICIES,
    TEST_MODES,
    AvgPoolDown,
    BatchNorm,
    BlurPool2D,
    BlurUpsample2D,
    Cropping2D,
    Dropout,
    InstanceNorm,
    LabelEncoder,
    ReflectionPad2D,
    at_test_time,
    initialization,
    precision,
    reflection_pad,
    seed_states,
)
from cyclegan_tf.networks.statistics import NormStatistics, norm_statistics
from cyclegan_tf.options import DISCRIMINATORS, GENERATORS, NORMS, UPSAMPLES

__all__ = [
    "DISCRIMINATORS", "GENERATORS", "INIT_TYPES", "NORMS", "PIX2PIXHD_G", "POLICIES", "TEST_MODES", "UPSAMPLES",
    "AvgPoolDown", "BatchNorm", "BlurPool2D", "BlurUpsample2D", "Cropping2D", "Dropout", "InstanceNorm",
    "LabelEncoder", "NormStatistics", "OneScale", "ReflectionPad2D", "SubpixelConv2D", "WinogradConv2D",
    "default_netG", "define_D", "define_G", "define_patch_mlp", "direct_convs", "feature_names", "generator_features",
    "generator_multiple", "initialization", "named_features", "norm_statistics", "official_layer_names", "precision",
    "reflection_pad", "seed_states", "at_test_time", "winograd_conv3x3",
]
