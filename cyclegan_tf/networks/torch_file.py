"""Reading files that PyTorch's `torch.save` and TorchScript wrote, without PyTorch: the official generators'
state dicts (networks/official.py) and the FID Inception weights (evaluation/inception.py).

Both formats are pickles whose tensors point into raw storages: a zip of `data.pkl` and `data/<key>` files
(PyTorch 1.6 and later, and TorchScript), or, before 1.6, pickles and storages one after another. The
unpickler resolves only the few names that torch's own pickles use and refuses every other, so reading a
file never runs code from it.
"""
from __future__ import annotations

import collections
import pickle
import zipfile
from pathlib import Path

import numpy as np

_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
           "IntStorage": "<i4", "ByteStorage": "u1", "BoolStorage": "?"}




class _Module:
    """Stands in for every `__torch__.*` class: unpickling fills its __dict__ with the module's attributes."""


def _view(storage: np.ndarray, offset: int, size, stride) -> np.ndarray:
    size, stride = tuple(size), tuple(stride)
    # as_strided reads wherever it is told: a damaged or hostile file must not make it read past the storage.
    last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset - 1
    if len(size) != len(stride) or offset < 0 or min(stride, default=0) < 0 or last >= len(storage):
        raise ValueError(f"a tensor of size {size} lies outside its storage of {len(storage)} elements")
    itemsize = storage.itemsize
    return np.lib.stride_tricks.as_strided(storage[offset:], size, [s * itemsize for s in stride]).copy()


class _LazyStorage:
    """A storage of a legacy (pre-zip) torch file: its bytes follow the pickle that names it."""

    def __init__(self, key: str, dtype: str, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class _LazyTensor:
    def __init__(self, storage: _LazyStorage, offset: int, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride

    def resolve(self, storages: dict[str, np.ndarray]) -> np.ndarray:
        return _view(storages[self.storage.key], self.offset, self.size, self.stride)


def _rebuild_tensor(storage, offset, size, stride, *_):
    if isinstance(storage, _LazyStorage):
        return _LazyTensor(storage, offset, size, stride)
    return _view(storage, offset, size, stride)


class _Unpickler(pickle.Unpickler):
    # Only the names that torch's own pickles use resolve; anything else is refused, so no code runs.
    # OrderedDict stays one: torch.save'd state dicts carry a `_metadata` attribute that a plain dict cannot take.
    _GLOBALS = {("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
                ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,  # PyTorch 0.3's files
                ("torch._utils", "_rebuild_parameter"): lambda data, *_: data,
                ("collections", "OrderedDict"): collections.OrderedDict,
                ("torch.jit._pickle", "build_intlist"): list, ("torch.jit._pickle", "build_doublelist"): list,
                ("torch.jit._pickle", "build_boollist"): list}

    def __init__(self, file, storage=None):
        """`storage(key, dtype, numel)` gives the storage a persistent id names (None: a file without any)."""
        super().__init__(file)
        self._storage = storage

    def find_class(self, module: str, name: str):
        if module.startswith("__torch__"):
            return _Module
        if module == "torch" and name in _DTYPES:
            return name
        if (module, name) in self._GLOBALS:
            return self._GLOBALS[module, name]
        raise pickle.UnpicklingError(f"unexpected global {module}.{name} in a torch file")

    def persistent_load(self, pid):
        # ('storage', type, key, location, numel) in zip files, and a sixth item, a view's extent, in legacy ones
        if self._storage is None or not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unexpected persistent id {str(pid)[:60]}")
        if len(pid) == 6 and pid[5] is not None:
            raise pickle.UnpicklingError("storage views (files of PyTorch before 1.0) are not supported")
        _, kind, key, _location, numel = pid[:5]
        return self._storage(str(key), _DTYPES[kind], int(numel))


def _zip_root(archive: zipfile.ZipFile) -> str:
    root = next(n for n in archive.namelist() if n.endswith("/data.pkl")).rpartition("/")[0]
    if f"{root}/byteorder" in archive.namelist() and archive.read(f"{root}/byteorder").strip() != b"little":
        raise ValueError("its tensors are big-endian")
    return root


def _zip_storage(archive: zipfile.ZipFile, root: str):
    return lambda key, dtype, numel: np.frombuffer(archive.read(f"{root}/data/{key}"), dtype, numel)


def _tensors(obj: _Module, prefix: str = "") -> dict[str, np.ndarray]:
    found = {}
    for name, value in vars(obj).items():
        if isinstance(value, np.ndarray):
            found[prefix + name] = value
        elif isinstance(value, _Module):
            found.update(_tensors(value, f"{prefix}{name}."))
    return found


_LEGACY_MAGIC, _LEGACY_PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


def _read_legacy(f) -> dict:
    """torch.save's format before PyTorch 1.6: pickles of a magic number, the protocol and the machine, then the
    object, then its storage keys, then each storage's bytes after its element count (int64)."""
    header = [_Unpickler(f).load() for _ in range(3)]
    if header[:2] != [_LEGACY_MAGIC, _LEGACY_PROTOCOL]:
        raise ValueError("neither a zip nor a legacy torch.save file")
    if isinstance(header[2], dict) and not header[2].get("little_endian", True):
        raise ValueError("its tensors are big-endian")
    lazy: dict[str, _LazyStorage] = {}
    obj = _Unpickler(f, lambda key, dtype, numel: lazy.setdefault(key, _LazyStorage(key, dtype, numel))).load()
    storages = {}
    for key in _Unpickler(f).load():
        s = lazy[str(key)]
        numel = int.from_bytes(f.read(8), "little", signed=True)
        if numel != s.numel:
            raise ValueError(f"storage {key} holds {numel} elements, its tensors expect {s.numel}")
        storages[s.key] = np.frombuffer(f.read(numel * np.dtype(s.dtype).itemsize), s.dtype, numel)
    return {k: v.resolve(storages) if isinstance(v, _LazyTensor) else v for k, v in obj.items()}


def read_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A `torch.save`d state dict (zip format, or the legacy one before PyTorch 1.6) as name → array, read
    without torch. ValueError (one line) for a file that is not one."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                root = _zip_root(archive)
                obj = _Unpickler(archive.open(f"{root}/data.pkl"), _zip_storage(archive, root)).load()
        else:
            with open(path, "rb") as f:
                obj = _read_legacy(f)
    except (zipfile.BadZipFile, StopIteration, pickle.UnpicklingError, EOFError, KeyError, TypeError,
            AttributeError, ValueError) as e:
        raise ValueError(f"not a readable torch.save file: {str(e) or type(e).__name__}") from None
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise ValueError("not a state dict (a mapping of names to tensors)")
    return dict(obj)


def read_torchscript(path: str | Path) -> dict[str, np.ndarray]:
    """A TorchScript file's tensors by dotted module path, e.g. `net.layers.mixed_4.tower_1.conv_3.weight`.
    ValueError (one line) for a file that is not one; OSError where it cannot be read."""
    try:
        with zipfile.ZipFile(path) as archive:
            root = _zip_root(archive)
            return _tensors(_Unpickler(archive.open(f"{root}/data.pkl"), _zip_storage(archive, root)).load())
    except (zipfile.BadZipFile, StopIteration, pickle.UnpicklingError, KeyError, ValueError) as e:
        raise ValueError(f"not a readable TorchScript file: {e}") from None
