"""pytorch-fid's own code, imported beside a torch whose torchvision does not import.

pytorch_fid's modules import torchvision at the top: fid_score for its ToTensor
transform, inception for the Inception3 blocks its FID network subclasses. Importing
torchvision itself fails beside the CPU torch build ('operator torchvision::nms does not
exist': its compiled ops do not load), but the Python source of its Inception3 needs
none of them. So:
- with a torchvision wheel on disk (FUSION_TORCHVISION_WHEEL, else the 0.28.0 wheel, the
  release made for torch 2.13, where this machine image keeps it), its Python files are
  unpacked and imported as the package `torchvision` without running its __init__
  (which loads the compiled part): pytorch-fid's FID network is then the real one;
- without one, `torchvision` is a stand-in with empty classes, enough to import
  pytorch_fid.fid_score for its Frechet distance (numpy and scipy only), and the
  network is not available.
Everything imported is removed from sys.modules on exit, so no other test sees it.
"""

from __future__ import annotations

import glob
import os
import sys
import types
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

_WHEEL_GLOBS = ("/opt/pypi-more/files/torchvision-0.28.0-*.whl", "/opt/wheels/torchvision-0.28.0-*.whl")


@dataclass
class PytorchFid:
    fid_score: types.ModuleType
    inception: types.ModuleType
    real_network: bool  # True when pytorch-fid's FID Inception can be built


def torchvision_wheel() -> Path | None:
    given = os.environ.get("FUSION_TORCHVISION_WHEEL")
    if given:
        return Path(given)
    found = [p for pattern in _WHEEL_GLOBS for p in sorted(glob.glob(pattern))]
    return Path(found[0]) if found else None


def _package(name: str, path: Path | None) -> Any:
    """An empty package registered in sys.modules (Any: its attributes are set one by one below)."""
    module = types.ModuleType(name)
    module.__path__ = [str(path)] if path is not None else []
    sys.modules[name] = module
    return module


def _real_torchvision(wheel: Path, into: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        z.extractall(into, [n for n in z.namelist() if n.startswith("torchvision/") and n.endswith(".py")])
    root = into / "torchvision"
    tv = _package("torchvision", root)
    tv.__version__ = wheel.name.split("-")[1]
    models = _package("torchvision.models", root / "models")
    tv.models = models
    from torchvision import transforms
    from torchvision.models import inception

    models.inception, models.inception_v3, tv.transforms = inception, inception.inception_v3, transforms


class _StandInBlock(torch.nn.Module):
    def __init__(self, *args, **kwargs):
        torch.nn.Module.__init__(self)


def _stand_in_torchvision() -> None:
    tv = _package("torchvision", None)
    tv.__version__ = "0.0"
    tv.models = _package("torchvision.models", None)
    tv.models.inception = types.ModuleType("torchvision.models.inception")
    for block in ("InceptionA", "InceptionC", "InceptionE"):
        setattr(tv.models.inception, block, type(block, (_StandInBlock,), {}))
    sys.modules["torchvision.models.inception"] = tv.models.inception
    tv.transforms = types.ModuleType("torchvision.transforms")
    sys.modules["torchvision.transforms"] = tv.transforms


@contextmanager
def pytorch_fid(scratch: Path) -> Iterator[PytorchFid]:
    """pytorch_fid's fid_score and inception modules, for the duration of the block."""
    before = set(sys.modules)
    wheel = torchvision_wheel()
    try:
        if wheel is not None and wheel.is_file():
            _real_torchvision(wheel, scratch)
        else:
            _stand_in_torchvision()
        from pytorch_fid import fid_score, inception

        yield PytorchFid(fid_score, inception, real_network=wheel is not None and wheel.is_file())
    finally:
        for name in set(sys.modules) - before:
            if name.split(".")[0] in ("torchvision", "pytorch_fid"):
                del sys.modules[name]
