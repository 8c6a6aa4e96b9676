"""The torch file reader (networks/torch_file.py), shared by the official generators' import and the FID Inception."""
from __future__ import annotations

import pickle
import zipfile

import numpy as np
import pytest
from torch_save import torch_save

from cyclegan_tf.networks import torch_file


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_state_dict_reader_reads_both_formats(tmp_path, legacy):
    rng = np.random.default_rng(0)
    state = {"a.conv.weight": rng.normal(size=(4, 3, 2, 2)).astype(np.float32),
             "a.bn.num_batches_tracked": np.array(7, np.int64),
             "fc.weight": np.asfortranarray(rng.normal(size=(5, 6)).astype(np.float32))}  # column-major strides
    # a view into fc.weight's storage: offset 2, shape (2, 3), strides (1, 2)
    path = torch_save(tmp_path / "s.pth", state, legacy, shared={"view": ("fc.weight", 2, (2, 3), (1, 2))})
    got = torch_file.read_state_dict(path)
    assert list(got) == [*state, "view"]
    for name, value in state.items():
        np.testing.assert_array_equal(got[name], value)
        assert got[name].dtype == value.dtype
    flat = state["fc.weight"].ravel(order="K")
    np.testing.assert_array_equal(got["view"], [[flat[2 + i + 2 * j] for j in range(3)] for i in range(2)])


def test_state_dict_reader_refuses_code_and_bad_tensors(tmp_path):
    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", pickle.PROTO + b"\x02" + pickle.GLOBAL + b"os\nsystem\n"
                   + pickle.BINUNICODE + b"\x04\x00\x00\x00true" + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)
    with pytest.raises(ValueError, match="unexpected global os.system"):
        torch_file.read_state_dict(evil)
    # a tensor that claims more elements than its storage holds must not read past it
    path = torch_save(tmp_path / "big.pth", {"w": np.zeros(4, np.float32)},
                       shared={"v": ("w", 2, (3,), (1,))})
    with pytest.raises(ValueError, match="outside its storage"):
        torch_file.read_state_dict(path)
    (tmp_path / "text.pth").write_text("not a torch file\n")
    with pytest.raises(ValueError, match="not a readable torch.save file"):
        torch_file.read_state_dict(tmp_path / "text.pth")
