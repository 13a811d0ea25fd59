"""Read pickled checkpoints (official .pkl/.pth/.ckpt) without executing any code in them.

Official checkpoints are pickles: loading one with plain ``pickle`` runs whatever the file says
(StyleGAN-style ``.pkl`` files even embed Python source). This unpickler admits only tensors,
storages, numpy arrays and plain containers. Any other global becomes an inert :class:`Opaque`
record of its name and constructor arguments, so the weights inside can still be dug out, while
callables such as ``os.system`` are refused outright.
"""

from __future__ import annotations

import codecs
import collections
import io
import os
import pickle
import stat
import tarfile
from pathlib import Path
from typing import Any

import torch


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file asked to call something that could execute code."""


class CheckpointFileError(ValueError):
    """The file is not a checkpoint we can read (not a regular file, not a pickle, damaged)."""


# What a pre-1.6 torch file (a tar) holds; anything else in one is refused before torch opens it.
_LEGACY_TAR_MEMBERS = {"sys_info", "pickle", "storages", "tensors"}
_BYTE_ENCODINGS = {"latin1", "latin-1", "iso-8859-1", "ascii", "utf-8", "utf8"}


def _codecs_encode(text: str, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it to rebuild ``bytes``; text codecs only."""
    if not isinstance(text, str) or str(encoding).lower() not in _BYTE_ENCODINGS:
        raise UnsafeCheckpointError(f"checkpoint asks to encode with {encoding!r}; refusing to load it")
    return codecs.encode(text, encoding, errors)


class Opaque:
    """Stand-in for a class the checkpoint names but we refuse to import.

    Keeps the qualified name, the constructor arguments and any pickled state, nothing else.
    """

    opaque_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> Opaque:
        # pickle's NEWOBJ calls __new__ without __init__: record the arguments here
        obj = super().__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args = args
        self.kwargs = kwargs

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __setitem__(self, key: Any, value: Any) -> None:  # dict subclasses pickle via SETITEMS
        self.__dict__.setdefault("items", {})[key] = value

    def append(self, value: Any) -> None:  # list subclasses pickle via APPENDS
        self.__dict__.setdefault("list_items", []).append(value)

    def extend(self, values: Any) -> None:
        for v in values:
            self.append(v)

    def __repr__(self) -> str:
        return f"Opaque({self.opaque_name})"


def _load_storage_from_bytes(data: bytes) -> Any:
    # torch pickles storages outside torch.save as a nested torch file; read it weights-only.
    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")


_ALLOWED: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("collections", "defaultdict"): collections.defaultdict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "bytearray"): bytearray,
    ("torch._utils", "_rebuild_tensor"): torch._utils._rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): torch._utils._rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): torch._utils._rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): torch._utils._rebuild_parameter_with_state,
    ("torch.nn.parameter", "Parameter"): torch.nn.Parameter,
    ("torch", "Size"): torch.Size,
    ("torch", "device"): torch.device,
    ("torch.storage", "_load_from_bytes"): _load_storage_from_bytes,
    ("_codecs", "encode"): _codecs_encode,
}
for _dtype_name in (
    "float16",
    "float32",
    "float64",
    "bfloat16",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "bool",
):
    _ALLOWED[("torch", _dtype_name)] = getattr(torch, _dtype_name)

_NUMPY_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}

# Modules whose callables could run code or touch the system: refuse loudly instead of stubbing.
_DANGEROUS_MODULES = (
    "os",
    "posix",
    "nt",
    "subprocess",
    "sys",
    "builtins",
    "__builtin__",
    "shutil",
    "socket",
    "importlib",
    "runpy",
    "code",
    "codeop",
    "pty",
    "ctypes",
    "pickle",
    "marshal",
    "types",
    "functools",
    "operator",
    "io",
    "webbrowser",
    "multiprocessing",
    "asyncio",
    "signal",
    "pathlib",
)


class SafeUnpickler(pickle.Unpickler):
    """An unpickler that executes nothing: see the module docstring."""

    def find_class(self, module: str, name: str) -> Any:
        key = (module, name)
        if key in _ALLOWED:
            return _ALLOWED[key]
        if name.endswith("Storage") and module in ("torch", "torch.cuda"):
            return getattr(torch, name)
        if key in _NUMPY_ALLOWED:
            import numpy as np  # noqa: F401  (resolves the numpy reconstructors only)

            return super().find_class(module, name)
        root = module.split(".")[0]
        if module.startswith("torch.nn.modules."):
            # Container/layer classes (ModuleList, Sequential...) of a pickled network, as in
            # StyleGAN-style .pkl files: keep their pickled state, never build the real class.
            return type(name, (Opaque,), {"opaque_name": f"{module}.{name}"})
        if root in _DANGEROUS_MODULES or root == "torch":  # (not "torch_utils", StyleGAN's helpers)
            raise UnsafeCheckpointError(
                f"checkpoint refers to {module}.{name}, which could run code; refusing to load it"
            )
        return type(name, (Opaque,), {"opaque_name": f"{module}.{name}"})


class _SafePickleModule:
    """What ``torch.load(pickle_module=...)`` expects: our Unpickler plus pickle's helpers."""

    Unpickler = SafeUnpickler
    load = staticmethod(lambda f, **kw: SafeUnpickler(f, **kw).load())
    __name__ = "inpaint_studio.models.safe_pickle"


def safe_load(path: str | Path) -> Any:
    """Load a pickled checkpoint: torch zip/legacy files or raw pickles (StyleGAN ``.pkl``).

    Tensors come back on the CPU. Unknown classes become :class:`Opaque` records. A file we cannot
    read raises :class:`CheckpointFileError` (or :class:`UnsafeCheckpointError`) with one line.
    """
    path = Path(path)
    _check_regular(path)
    with path.open("rb") as f:
        head = f.read(4)
    try:
        if head.startswith(b"PK"):  # torch zip format (.pth/.ckpt since torch 1.6)
            return torch.load(path, map_location="cpu", pickle_module=_SafePickleModule, weights_only=False)
        if _is_tar(path):
            _check_legacy_tar(path)
        with path.open("rb") as f:
            try:
                return torch.load(f, map_location="cpu", pickle_module=_SafePickleModule, weights_only=False)
            except (RuntimeError, pickle.UnpicklingError, EOFError) as err:
                if isinstance(err, UnsafeCheckpointError):
                    raise
            f.seek(0)
            return SafeUnpickler(f).load()
    except (UnsafeCheckpointError, CheckpointFileError):
        raise
    except MemoryError:
        raise CheckpointFileError(f"{path.name}: not enough memory to read this checkpoint") from None
    except RecursionError:
        raise CheckpointFileError(f"{path.name}: the pickle nests too deeply; a damaged file") from None
    except Exception as err:  # noqa: BLE001  every other way a hostile file fails is "not a checkpoint"
        raise CheckpointFileError(
            f"{path.name} is not a readable checkpoint ({type(err).__name__}: {_first_line(err)})"
        ) from None


def _check_regular(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        raise CheckpointFileError(f"{path}: no such file") from None
    if stat.S_ISDIR(mode):
        raise CheckpointFileError(f"{path} is a folder, not a checkpoint file")
    if not stat.S_ISREG(mode):
        raise CheckpointFileError(f"{path} is not a regular file (a pipe or device); refusing to read it")


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError, ValueError):
        return False


def _check_legacy_tar(path: Path) -> None:
    """Torch extracts a legacy tar into a temp dir and opens its members: a FIFO member would hang
    it forever and a link could point anywhere. Only the four regular files torch writes pass."""
    size = os.path.getsize(path)
    try:
        with tarfile.open(path, mode="r:") as tar:
            members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as err:
        raise CheckpointFileError(f"{path.name}: damaged tar checkpoint ({_first_line(err)})") from None
    names = {m.name for m in members}
    for m in members:
        if not m.isreg():
            raise CheckpointFileError(
                f"{path.name}: tar member {m.name!r} is not a regular file; refusing to extract it"
            )
        if m.size > size:
            raise CheckpointFileError(
                f"{path.name}: tar member {m.name!r} claims more bytes than the file has"
            )
    if not names <= _LEGACY_TAR_MEMBERS or "pickle" not in names:
        raise CheckpointFileError(
            f"{path.name} is a tar archive but not a torch checkpoint (it holds {', '.join(sorted(names))[:80]})"
        )


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:120]


def find_tensors(obj: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten nested dicts / Opaque records into ``{dotted.key: tensor}`` (for inspection)."""
    out: dict[str, torch.Tensor] = {}
    if isinstance(obj, torch.Tensor):
        out[prefix.rstrip(".")] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(find_tensors(v, f"{prefix}{k}."))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(find_tensors(v, f"{prefix}{i}."))
    elif isinstance(obj, Opaque):
        out.update(find_tensors(obj.args, f"{prefix}args."))
        out.update(find_tensors(obj.state, f"{prefix}state."))
    return out
