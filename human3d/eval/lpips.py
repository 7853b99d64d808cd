"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features as a Perceptual Metric"), AlexNet
variant, in plain torch.

The ``lpips`` package cannot be used here (it imports torchvision, which fails with CPU torch), so the network is
rebuilt: :class:`AlexNetFeatures` has exactly the layer layout of ``torchvision.models.alexnet().features`` (so the
official torchvision AlexNet state dict, keys ``features.N.weight``, loads onto it unchanged) and the linear heads
are named as in the LPIPS v0.1 ``alex.pth`` file (``lin0.model.1.weight`` ... ``lin4.model.1.weight``).

Distance: images in [-1, 1] are shifted and scaled per channel, features are taken after the 5 ReLUs, unit-normalised
along channels, their squared difference weighted per channel by a linear head, averaged over space and summed over
layers. Without the official weights there is no LPIPS: :func:`load_lpips` raises MissingWeightsError and callers
report LPIPS as unavailable.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from human3d.errors import MissingWeightsError, UsageError

#: Channels after each ReLU that LPIPS reads (AlexNet relu1..relu5) and their indices in ``features``.
CHANNELS: tuple[int, ...] = (64, 192, 384, 256, 256)
TAPS: tuple[int, ...] = (1, 4, 7, 9, 11)
#: LPIPS's ScalingLayer constants for inputs in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)

BACKBONE_FILES = ("alexnet.safetensors", "alexnet-owt-7be5be79.pth")
LINEAR_FILES = ("alex_lin.safetensors", "alex.pth")


class AlexNetFeatures(nn.Sequential):
    """torchvision's ``alexnet().features``: indices 0..12, the same modules at the same indices."""

    def __init__(self) -> None:
        super().__init__(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(inplace=False),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(inplace=False),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(inplace=False),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(inplace=False),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(inplace=False),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """(B, 3, H, W) -> the 5 ReLU outputs LPIPS compares."""
        out = []
        for i, layer in enumerate(self):
            x = layer(x)
            if i in TAPS:
                out.append(x)
            if i == TAPS[-1]:
                break
        return out


class LinearHead(nn.Module):
    """LPIPS's NetLinLayer: dropout (inactive in eval) then a 1x1 convolution without bias to one channel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(channels, 1, kernel_size=1, stride=1, padding=0,
                                                           bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class LPIPS(nn.Module):
    """The AlexNet LPIPS distance. ``forward(a, b)``: (B, 3, H, W) images in [-1, 1] -> (B,) distances."""

    def __init__(self) -> None:
        super().__init__()
        self.net = AlexNetFeatures()
        for i, c in enumerate(CHANNELS):
            self.add_module(f"lin{i}", LinearHead(c))
        self.register_buffer("shift", torch.tensor(SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(SCALE).view(1, 3, 1, 1), persistent=False)
        self.eval()

    @property
    def heads(self) -> list[LinearHead]:
        return [getattr(self, f"lin{i}") for i in range(len(CHANNELS))]

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        fa = self.net.taps((a - self.shift) / self.scale)
        fb = self.net.taps((b - self.shift) / self.scale)
        total = torch.zeros(a.shape[0], dtype=a.dtype, device=a.device)
        for xa, xb, head in zip(fa, fb, self.heads):
            # unit length along channels, as LPIPS's normalize_tensor (eps 1e-10)
            na = xa / (torch.sqrt((xa ** 2).sum(1, keepdim=True)) + 1e-10)
            nb = xb / (torch.sqrt((xb ** 2).sum(1, keepdim=True)) + 1e-10)
            total = total + head((na - nb) ** 2).mean(dim=(1, 2, 3))
        return total

    @torch.no_grad()
    def distance_images(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) float images in [0, 1] (or uint8) -> (B,) LPIPS distances, one view at a time."""
        param = next(self.parameters())
        out = []
        for x, y in zip(np.asarray(a), np.asarray(b)):
            tx, ty = (_to_tensor(z, param) for z in (x, y))
            out.append(float(self(tx, ty)[0]))
        return np.asarray(out)

    def load_official(self, backbone: dict[str, torch.Tensor], linear: dict[str, torch.Tensor]) -> None:
        """Load torchvision's AlexNet state dict (only ``features.*`` is used) and LPIPS's linear heads."""
        feats = {k[len("features."):]: v for k, v in backbone.items() if k.startswith("features.")}
        if not feats:
            raise MissingWeightsError("the LPIPS backbone file holds no 'features.*' tensors; it is not torchvision's "
                                      "AlexNet state dict")
        self.net.load_state_dict(feats, strict=True)
        heads = {k: v for k, v in linear.items() if k.startswith("lin")}
        missing = self.load_state_dict({**{f"net.{k}": v for k, v in feats.items()}, **heads}, strict=False)
        if missing.missing_keys or missing.unexpected_keys:
            raise MissingWeightsError(f"the LPIPS linear-head file does not match (missing {missing.missing_keys}, "
                                      f"unexpected {missing.unexpected_keys}); use LPIPS v0.1 alex.pth")
        self.eval()


def _to_tensor(image: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    x = np.asarray(image)
    x = x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32)
    t = torch.as_tensor(x[..., :3]).permute(2, 0, 1)[None]
    return (t * 2.0 - 1.0).to(device=like.device, dtype=like.dtype)


def _read_state(path: Path, allow_pickle: bool) -> dict[str, torch.Tensor]:
    from human3d.weights import LOAD_ERRORS, load_failure

    if path.suffix != ".safetensors" and not allow_pickle:
        raise UsageError(f"{path} is a pickle checkpoint; pass --allow-pickle to load it (or convert it to "
                         "safetensors)")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # weights_only keeps torch's restricted unpickler: tensors and containers only
        return torch.load(path, map_location="cpu", weights_only=True)
    except LOAD_ERRORS as err:
        raise load_failure(path, err, f"put an intact copy into {path.parent}") from err


def _first(folder: Path, names: tuple[str, ...]) -> Path | None:
    return next((folder / n for n in names if (folder / n).is_file()), None)


def load_lpips(weights_dir: str | Path | None = None, *, folder: str | Path | None = None,
               allow_pickle: bool = False) -> LPIPS:
    """The AlexNet LPIPS with the official weights: from ``folder`` when given, else the registry asset 'lpips'.

    Raises MissingWeightsError (with what to do) when the files are absent.
    """
    from human3d.weights import require

    root = Path(folder) if folder is not None else require("lpips", weights_dir)
    backbone, linear = _first(root, BACKBONE_FILES), _first(root, LINEAR_FILES)
    if backbone is None or linear is None:
        raise MissingWeightsError(f"LPIPS weights not found in {root}: it needs one of {', '.join(BACKBONE_FILES)} "
                                  f"and one of {', '.join(LINEAR_FILES)}")
    model = LPIPS()
    model.load_official(_read_state(backbone, allow_pickle), _read_state(linear, allow_pickle))
    return model


def try_load_lpips(weights_dir: str | Path | None = None, *, folder: str | Path | None = None,
                   allow_pickle: bool = False) -> tuple[LPIPS | None, str]:
    """(model, '') when the LPIPS weights load, else (None, a one-line note saying why and what to do)."""
    try:
        return load_lpips(weights_dir, folder=folder, allow_pickle=allow_pickle), ""
    except (MissingWeightsError, UsageError) as err:
        return None, f"LPIPS unavailable: {err}"
