"""LPIPS: the network layout official weights map onto, loading from files, the distance against a naive
re-computation, and 'unavailable' without weights (never a made-up number)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from human3d.eval.lpips import LPIPS, AlexNetFeatures, load_lpips, try_load_lpips

#: torchvision.models.alexnet().features parameter names and shapes (what official weights hold).
TORCHVISION_FEATURES = {
    "0.weight": (64, 3, 11, 11), "0.bias": (64,), "3.weight": (192, 64, 5, 5), "3.bias": (192,),
    "6.weight": (384, 192, 3, 3), "6.bias": (384,), "8.weight": (256, 384, 3, 3), "8.bias": (256,),
    "10.weight": (256, 256, 3, 3), "10.bias": (256,),
}


def _random_official(seed: int = 0) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """State dicts shaped like torchvision's AlexNet file (with a classifier) and LPIPS's alex.pth."""
    g = torch.Generator().manual_seed(seed)
    backbone = {f"features.{k}": torch.randn(s, generator=g) * 0.05 for k, s in TORCHVISION_FEATURES.items()}
    backbone["classifier.1.weight"] = torch.randn(16, 8, generator=g)  # ignored: LPIPS reads only the features
    linear = {f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1, generator=g)
              for i, c in enumerate((64, 192, 384, 256, 256))}
    return backbone, linear


def test_layout_matches_torchvision_and_lpips_files() -> None:
    shapes = {k: tuple(v.shape) for k, v in AlexNetFeatures().state_dict().items()}
    assert shapes == TORCHVISION_FEATURES
    heads = {k: tuple(v.shape) for k, v in LPIPS().state_dict().items() if k.startswith("lin")}
    assert heads == {f"lin{i}.model.1.weight": (1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))}


def _naive_lpips(backbone: dict[str, torch.Tensor], linear: dict[str, torch.Tensor], a: torch.Tensor,
                 b: torch.Tensor) -> torch.Tensor:
    """LPIPS written out with functional ops straight from the state dicts."""
    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(x: torch.Tensor) -> list[torch.Tensor]:
        w = lambda i: (backbone[f"features.{i}.weight"], backbone[f"features.{i}.bias"])  # noqa: E731
        x = (x - shift) / scale
        r1 = F.relu(F.conv2d(x, *w(0), stride=4, padding=2))
        r2 = F.relu(F.conv2d(F.max_pool2d(r1, 3, 2), *w(3), padding=2))
        r3 = F.relu(F.conv2d(F.max_pool2d(r2, 3, 2), *w(6), padding=1))
        r4 = F.relu(F.conv2d(r3, *w(8), padding=1))
        r5 = F.relu(F.conv2d(r4, *w(10), padding=1))
        return [r1, r2, r3, r4, r5]

    total = torch.zeros(a.shape[0])
    for i, (fa, fb) in enumerate(zip(feats(a), feats(b))):
        na = fa / (fa.norm(dim=1, keepdim=True) + 1e-10)
        nb = fb / (fb.norm(dim=1, keepdim=True) + 1e-10)
        wl = linear[f"lin{i}.model.1.weight"].view(1, -1, 1, 1)
        total += ((na - nb) ** 2 * wl).sum(1).mean((1, 2))
    return total


def test_loaded_weights_give_the_naive_distance(tmp_path) -> None:
    from safetensors.torch import save_file

    backbone, linear = _random_official()
    save_file(backbone, str(tmp_path / "alexnet.safetensors"))
    save_file(linear, str(tmp_path / "alex_lin.safetensors"))
    model = load_lpips(folder=tmp_path)
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 96, 96, generator=g) * 2 - 1
    b = torch.rand(2, 3, 96, 96, generator=g) * 2 - 1
    with torch.no_grad():
        ours = model(a, b)
        assert torch.allclose(ours, _naive_lpips(backbone, linear, a, b), rtol=1e-4, atol=1e-7)
        assert torch.allclose(ours, model(b, a), rtol=1e-5)
        assert torch.all(model(a, a) == 0) and torch.all(ours > 0)
    # the numpy entry point: (B, H, W, 3) in [0, 1]
    imgs = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    d = model.distance_images(imgs, imgs[::-1])
    assert d.shape == (2,) and np.all(d > 0) and np.allclose(d[0], d[1], rtol=1e-4)


def test_pickle_weights_need_permission(tmp_path) -> None:
    backbone, linear = _random_official()
    torch.save(backbone, tmp_path / "alexnet-owt-7be5be79.pth")
    torch.save(linear, tmp_path / "alex.pth")
    model, note = try_load_lpips(folder=tmp_path)
    assert model is None and "--allow-pickle" in note
    model = load_lpips(folder=tmp_path, allow_pickle=True)
    assert torch.equal(model.lin2.model[1].weight, linear["lin2.model.1.weight"])


def test_without_weights_lpips_is_unavailable(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("HUMAN3D_WEIGHTS", raising=False)
    monkeypatch.chdir(tmp_path)
    model, note = try_load_lpips(tmp_path / "nothing")
    assert model is None and note.startswith("LPIPS unavailable") and "lpips" in note
    model, note = try_load_lpips(folder=tmp_path)
    assert model is None and "alexnet" in note
