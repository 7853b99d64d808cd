"""``human3d train prepare-skel``: scans with their body fits -> g_skel's training pairs (the renders of
:mod:`human3d.train.data`'s g_skel format).

A scan folder holds, per scan, a mesh ``NAME.obj`` / ``.glb`` / ``.gltf`` / ``.ply`` (texture or vertex colours;
any unit; +Y up, facing +Z) and its pose ``NAME.json`` (or ``NAME.npz`` with the same keys), in the mesh's frame:

* joints: ``{"joint_names": [...], "joints": [[x, y, z], ...]}`` (SMPL/SMPL-X names, or Anny's bone names);
* or a body-model fit: ``{"body_model": "anny" | "smplx", "pose": {joint: [rx, ry, rz], ...}, "shape": [...],
  "scale": s, "translation": [tx, ty, tz]}``, the model's joints (canonical axes, metres) mapped by
  ``scale * J + translation`` into the mesh's frame (SMPL-X needs the user's model files, see ``human3d weights``).

Each scan is framed as the pipeline frames a photo (DESIGN.md §3: the front view's bounding box, long side
CROP_SIZE/CANVAS_SIZE of the canvas, centred; depth centred likewise), the same similarity applied to the joints,
and rendered with the project's rasterizers into the g_skel views (default: PSHuman's six body views): world-frame
normal maps (RGB (n+1)/2) and colours, white background, not mirrored. ``OUT/NAME.npz`` then holds ``normals``,
``colors`` (V, R, R, 3) uint8, ``joints`` (24, 3) canonical and ``joint_names``; ``OUT/views.json`` records the views.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from human3d.cameras import CANVAS_SIZE, CROP_SIZE, OrthoCamera
from human3d.errors import BadInputError, UsageError
from human3d.ops.image import encode_normals
from human3d.types import TexturedMesh

log = logging.getLogger("human3d")

MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply")
#: Colour of a scan that has neither a texture nor vertex colours.
PLAIN_GREY = 200


def find_scans(folder: str | Path) -> list[tuple[Path, Path]]:
    """(mesh, pose file) pairs of a scan folder, sorted by name; UsageError when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder; give the scan folder (NAME.obj|glb + NAME.json)")
    pairs = []
    for mesh in sorted(p for p in folder.iterdir() if p.suffix.lower() in MESH_SUFFIXES):
        pose = next((mesh.with_suffix(s) for s in (".json", ".npz") if mesh.with_suffix(s).is_file()), None)
        if pose is None:
            log.warning("skipping %s: no %s.json or .npz with its joints or body fit", mesh.name, mesh.stem)
            continue
        pairs.append((mesh, pose))
    if not pairs:
        raise UsageError(f"{folder} holds no scan with a pose file (NAME.obj|glb|ply + NAME.json); see "
                         "human3d.train.prepare for the format")
    return pairs


def _read_pose_file(path: Path) -> dict[str, Any]:
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k].tolist() for k in data.files}
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise BadInputError(f"{path} is not readable JSON/npz ({err})") from err


def scan_joints(path: Path, models: dict[str, Any], weights_dir: Path | None = None,
                device: str = "cpu") -> tuple[np.ndarray, list[str]]:
    """A pose file -> ((J, 3) joints in the mesh's frame, their names); ``models`` caches loaded body models."""
    data = _read_pose_file(path)
    if "joints" in data and "joint_names" in data:
        joints = np.asarray(data["joints"], dtype=np.float64)
        names = [str(n) for n in data["joint_names"]]
    elif "body_model" in data:
        joints, names = _fit_joints(data, path, models, weights_dir, device)
    else:
        raise BadInputError(f"{path} has neither 'joints' + 'joint_names' nor a 'body_model' fit; see "
                            "human3d.train.prepare")
    if joints.ndim != 2 or joints.shape != (len(names), 3):
        raise BadInputError(f"{path}: joints must be (J, 3) with J = len(joint_names), got {joints.shape}")
    return joints, names


def _fit_joints(data: dict[str, Any], path: Path, models: dict[str, Any], weights_dir: Path | None,
                device: str) -> tuple[np.ndarray, list[str]]:
    from human3d.body.models import load_body_model

    choice = str(data["body_model"])
    if choice not in ("anny", "smplx"):
        raise BadInputError(f"{path}: body_model must be 'anny' or 'smplx', got {choice!r}")
    if choice not in models:
        models[choice] = load_body_model(choice, device, weights_dir)
    model = models[choice]
    shape = torch.as_tensor(data.get("shape", model.shape_mean.tolist()), dtype=torch.float32)[None]
    rotvecs = {j: torch.as_tensor(v, dtype=torch.float32)[None] for j, v in dict(data.get("pose", {})).items()}
    with torch.no_grad():
        out = model.forward({j: v.to(model.device) for j, v in rotvecs.items()}, shape.to(model.device))
    joints = out.joints[0].cpu().numpy().astype(np.float64)
    joints = float(data.get("scale", 1.0)) * joints + np.asarray(data.get("translation", (0.0, 0.0, 0.0)))
    return joints, list(model.joint_names)


def framing(vertices: np.ndarray) -> tuple[float, np.ndarray]:
    """(scale, centre) putting a mesh in the canonical canvas: p -> (p - centre) * scale (DESIGN.md §3)."""
    lo, hi = vertices.min(0), vertices.max(0)
    extent = float((hi[:2] - lo[:2]).max())
    if not np.isfinite(extent) or extent <= 0:
        raise BadInputError("the scan has no extent in x, y")
    return (2.0 * CROP_SIZE / CANVAS_SIZE) / extent, (lo + hi) / 2.0


def vertex_colours(mesh: TexturedMesh) -> tuple[np.ndarray | None, bool]:
    """(colours (V, 3) float in [0, 1] or None when the colour comes from the texture, has_colour)."""
    if mesh.vertex_colors is not None:
        return mesh.vertex_colors.astype(np.float32) / 255.0, True
    if mesh.texture is not None and mesh.uvs is not None:
        return None, True
    return np.full((len(mesh.vertices), 3), PLAIN_GREY / 255.0, np.float32), False


def render_scan(mesh: TexturedMesh, cameras: Sequence[OrthoCamera], rasterizer: Any
                ) -> tuple[np.ndarray, np.ndarray]:
    """A framed mesh -> (normals, colours), each (V, R, R, 3) uint8 on white, not mirrored."""
    from human3d.io.meshes import sample_texture
    from human3d.render import render_normals

    v = torch.as_tensor(mesh.vertices, dtype=torch.float32)
    f = torch.as_tensor(mesh.faces, dtype=torch.int64)
    res = render_normals(v, f, cameras, rasterizer, antialias=False)
    mask = res.frags.mask.cpu().numpy()
    normals = encode_normals(res.normals.detach().cpu().numpy(), mask)
    colours, _ = vertex_colours(mesh)
    if colours is None:  # per-pixel UVs, then the texture
        uv = rasterizer.interpolate(torch.as_tensor(mesh.uvs, dtype=torch.float32), res.frags).cpu().numpy()
        rgb = np.full(mask.shape + (3,), 255, np.uint8)
        rgb[mask] = sample_texture(mesh.texture, uv[mask])
    else:
        c = rasterizer.interpolate(torch.as_tensor(colours), res.frags).cpu().numpy()
        rgb = np.clip(c * 255.0 + 0.5, 0, 255).astype(np.uint8)
        rgb[~mask] = 255
    return normals, rgb


def prepare_skel_data(scans: str | Path, out: str | Path, cameras: Sequence[OrthoCamera], *,
                      renderer: str = "auto", weights_dir: Path | None = None, overwrite: bool = False,
                      device: str = "cpu") -> list[Path]:
    """Render every scan of ``scans`` into ``out/NAME.npz`` (g_skel's render format); returns the files written.

    Existing outputs are kept (a rerun resumes) unless ``overwrite``; each file is written beside and renamed.
    """
    from human3d.io.meshes import read_mesh
    from human3d.render import get_rasterizer
    from human3d.train.skeleton import SKELETON_JOINTS, select_skeleton_joints

    pairs = find_scans(scans)
    out = Path(out)
    views = {"views": [c.name for c in cameras], "azimuths": [c.azimuth_deg for c in cameras],
             "resolution": int(cameras[0].resolution)}
    record = out / "views.json"
    if record.is_file() and not overwrite and json.loads(record.read_text()) != views:
        raise UsageError(f"{out} holds renders of other views ({record.read_text().strip()}); render with the same "
                         "--views/--resolution, choose another folder or pass --overwrite")
    out.mkdir(parents=True, exist_ok=True)
    rasterizer = get_rasterizer(renderer, device)
    models: dict[str, Any] = {}
    written = []
    for mesh_path, pose_path in pairs:
        dst = out / f"{mesh_path.stem}.npz"
        if dst.exists() and not overwrite:
            continue
        mesh = read_mesh(mesh_path)
        joints, names = scan_joints(pose_path, models, weights_dir, device)
        try:
            skel = select_skeleton_joints(torch.as_tensor(joints), names).numpy()
        except UsageError as err:
            raise BadInputError(f"{pose_path}: {err}") from err
        scale, centre = framing(mesh.vertices.astype(np.float64))
        if not vertex_colours(mesh)[1]:
            log.warning("%s has no texture or vertex colours; its colour renders are plain grey", mesh_path.name)
        mesh.vertices = ((mesh.vertices - centre) * scale).astype(np.float32)
        normals, colours = render_scan(mesh, cameras, rasterizer)
        tmp = dst.with_name(dst.name + ".tmp")
        with tmp.open("wb") as fh:
            np.savez_compressed(fh, normals=normals, colors=colours,
                                joints=((skel - centre) * scale).astype(np.float32),
                                joint_names=np.asarray(SKELETON_JOINTS))
        tmp.replace(dst)
        written.append(dst)
    record.write_text(json.dumps(views, indent=2))
    return written
