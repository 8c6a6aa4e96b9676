"""torch.save's two file formats written without PyTorch, to test the readers of networks/torch_file.py."""
from __future__ import annotations

import pickle
import zipfile
from pathlib import Path

import numpy as np


def pickle_state(state: dict[str, np.ndarray], legacy: bool, shared: dict[str, tuple] | None = None) -> tuple[
        bytes, dict[str, np.ndarray]]:
    """torch.save's pickle of an OrderedDict of tensors (protocol 2, each tensor through _rebuild_tensor_v2 and a
    persistent storage id, the dict's `_metadata` set by BUILD), and its storages by key. `shared` adds views:
    name → (storage name, offset, size, stride)."""
    import struct

    out = [pickle.PROTO + b"\x02"]

    def glob(module: str, name: str) -> None:
        out.append(pickle.GLOBAL + f"{module}\n{name}\n".encode())

    def text(s: str) -> None:
        out.append(pickle.BINUNICODE + struct.pack("<I", len(s.encode())) + s.encode())

    def ints(*values: int) -> None:
        out.append(pickle.MARK + b"".join(pickle.BININT + struct.pack("<i", v) for v in values) + pickle.TUPLE)

    def ordered_dict() -> None:
        glob("collections", "OrderedDict")
        out.append(pickle.EMPTY_TUPLE + pickle.REDUCE)

    def tensor(key: str, storage: np.ndarray, offset: int, size: tuple, stride: tuple) -> None:
        glob("torch._utils", "_rebuild_tensor_v2")
        out.append(pickle.MARK + pickle.MARK)
        text("storage")
        glob("torch", {"float32": "FloatStorage", "float16": "HalfStorage", "int64": "LongStorage"}[storage.dtype.name])
        text(key)
        text("cpu")
        out.append(pickle.BININT + struct.pack("<i", storage.size) + (pickle.NONE if legacy else b"")
                   + pickle.TUPLE + pickle.BINPERSID + pickle.BININT + struct.pack("<i", offset))
        ints(*size)
        ints(*stride)
        out.append(pickle.NEWFALSE)
        ordered_dict()
        out.append(pickle.TUPLE + pickle.REDUCE)

    storages = {}
    ordered_dict()
    out.append(pickle.MARK)
    for i, (name, value) in enumerate(state.items()):
        storages[str(i)] = value.ravel(order="K")  # memory order, which the strides index
        text(name)
        tensor(str(i), storages[str(i)], 0, value.shape, tuple(s // value.itemsize for s in value.strides))
    for name, (of, offset, size, stride) in (shared or {}).items():
        text(name)
        tensor(str(list(state).index(of)), storages[str(list(state).index(of))], offset, size, stride)
    out.append(pickle.SETITEMS + pickle.EMPTY_DICT)
    text("_metadata")
    ordered_dict()
    out.append(pickle.SETITEM + pickle.BUILD + pickle.STOP)
    return b"".join(out), storages


def torch_save(path: Path, state: dict[str, np.ndarray], legacy: bool = False, **kwargs) -> Path:
    """A file as torch.save writes it: the zip format (PyTorch >= 1.6) or the legacy stream of pickles."""
    data, storages = pickle_state(state, legacy, **kwargs)
    if legacy:
        with path.open("wb") as f:
            for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
                f.write(pickle.dumps(header, protocol=2))
            f.write(data)
            f.write(pickle.dumps(list(storages), protocol=2))
            for s in storages.values():
                f.write(s.size.to_bytes(8, "little") + s.tobytes())
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", data)
            z.writestr("archive/byteorder", "little")
            for key, s in storages.items():
                z.writestr(f"archive/data/{key}", s.tobytes())
            z.writestr("archive/version", "3\n")
    return path
