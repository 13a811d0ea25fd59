"""The restricted unpickler: protocol-2 pickles of plain data load; text codecs only."""

from __future__ import annotations

import codecs
import pickle

import numpy as np
import pytest
import torch

from inpaint_studio.models.safe_pickle import CheckpointFileError, UnsafeCheckpointError, safe_load


def test_protocol_2_pickles_of_arrays_and_tensors_load(tmp_path):
    arrays = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "b": b"\x00\xffraw"}
    (tmp_path / "np2.pkl").write_bytes(pickle.dumps(arrays, protocol=2))  # bytes via _codecs.encode
    back = safe_load(tmp_path / "np2.pkl")
    assert np.array_equal(back["w"], arrays["w"]) and back["b"] == arrays["b"]
    state = {"layer.weight": torch.arange(4.0)}
    torch.save(state, tmp_path / "t2.pth", _use_new_zipfile_serialization=False, pickle_protocol=2)
    assert torch.equal(safe_load(tmp_path / "t2.pth")["layer.weight"], state["layer.weight"])


class _Codec:
    def __reduce__(self):
        return (codecs.encode, ("payload", "rot13"))


def test_codecs_encode_admits_text_encodings_only(tmp_path):
    (tmp_path / "c.pkl").write_bytes(pickle.dumps(_Codec(), protocol=2))
    with pytest.raises(UnsafeCheckpointError, match="rot13"):
        safe_load(tmp_path / "c.pkl")


def test_unreadable_files_are_one_checkpoint_error(tmp_path):
    (tmp_path / "junk.pth").write_bytes(b"\x80\x02junk that is no pickle")
    with pytest.raises(CheckpointFileError, match="junk.pth is not a readable checkpoint"):
        safe_load(tmp_path / "junk.pth")
    with pytest.raises(CheckpointFileError, match="is a folder"):
        safe_load(tmp_path)
