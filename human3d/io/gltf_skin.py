"""glTF 2.0 skins and animations: added to the GLB trimesh writes, and read back for rendering.

Layout (as in Khronos' CesiumMan sample): node 0 is the skinned mesh (``skin: 0``, no transform of its own), the
joints are nodes 1..J in the rig's order, each with its bind-pose translation relative to its parent and identity
rotation; ``skins[0]`` lists them with their inverse bind matrices; the mesh primitive gets ``JOINTS_0`` (unsigned
byte, or short above 255 joints) and ``WEIGHTS_0`` (float); an animation samples joint rotations (LINEAR). The
humanoid bone map goes in ``skins[0].extras.humanoid`` (role -> joint node name).
"""

from __future__ import annotations

import dataclasses
import json
import struct
from pathlib import Path

import numpy as np

from human3d.errors import BadInputError
from human3d.types import Skin

_GLB_MAGIC, _JSON, _BIN = 0x46546C67, 0x4E4F534A, 0x004E4942
_FLOAT, _UBYTE, _USHORT = 5126, 5121, 5123
_ARRAY_BUFFER = 34962


def skin_to_export(skin: Skin, scale: float, offset: np.ndarray) -> Skin:
    """The skin of a mesh mapped by ``x -> scale * x + offset`` (the export transform): joints move with the mesh,
    their orientation stays (glTF joints carry no scale)."""
    bind = skin.bind_matrices.copy()
    bind[:, :3, 3] = bind[:, :3, 3] * scale + np.asarray(offset)
    return dataclasses.replace(skin, bind_matrices=bind)


def _split_glb(data: bytes) -> tuple[dict, bytes]:
    magic, _, length = struct.unpack_from("<III", data, 0)
    if magic != _GLB_MAGIC:
        raise BadInputError("not a GLB file (bad magic)")
    doc, binary, at = None, b"", 12
    while at < length:
        size, kind = struct.unpack_from("<II", data, at)
        chunk = data[at + 8: at + 8 + size]
        if kind == _JSON:
            doc = json.loads(chunk.decode("utf-8"))
        elif kind == _BIN:
            binary = bytes(chunk)
        at += 8 + size
    if doc is None:
        raise BadInputError("GLB without a JSON chunk")
    return doc, binary


def _join_glb(doc: dict, binary: bytes) -> bytes:
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    total = 12 + 8 + len(text) + (8 + len(binary) if binary else 0)
    out = struct.pack("<III", _GLB_MAGIC, 2, total) + struct.pack("<II", len(text), _JSON) + text
    if binary:
        out += struct.pack("<II", len(binary), _BIN) + binary
    return out


class _Buffer:
    """Appends accessors to a glTF document's single binary buffer."""

    def __init__(self, doc: dict, binary: bytes) -> None:
        self.doc, self.parts = doc, [binary + b"\0" * (-len(binary) % 4)]
        self.length = len(self.parts[0])

    def add(self, array: np.ndarray, component: int, kind: str, *, target: int | None = None,
            min_max: bool = False, normalized: bool = False) -> int:
        raw = np.ascontiguousarray(array).tobytes()
        view = {"buffer": 0, "byteOffset": self.length, "byteLength": len(raw)}
        if target is not None:
            view["target"] = target
        self.doc.setdefault("bufferViews", []).append(view)
        self.parts.append(raw + b"\0" * (-len(raw) % 4))
        self.length += len(self.parts[-1])
        acc = {"bufferView": len(self.doc["bufferViews"]) - 1, "componentType": component, "count": int(len(array)),
               "type": kind}
        if normalized:
            acc["normalized"] = True
        if min_max:
            flat = np.asarray(array).reshape(len(array), -1)
            acc["min"], acc["max"] = flat.min(0).tolist(), flat.max(0).tolist()
        self.doc.setdefault("accessors", []).append(acc)
        return len(self.doc["accessors"]) - 1

    def finish(self) -> bytes:
        self.doc["buffers"] = [{"byteLength": self.length}]
        return b"".join(self.parts)


def _weights_f32(weights: np.ndarray) -> np.ndarray:
    """(V, 4) float32 weights whose float32 sum is 1 within rounding (the largest absorbs the remainder)."""
    w = np.asarray(weights, np.float64)
    w = w / w.sum(1, keepdims=True)
    w32 = w.astype(np.float32)
    top = np.argmax(w32, axis=1)
    rows = np.arange(len(w32))
    others = w32.sum(1, dtype=np.float32) - w32[rows, top]
    w32[rows, top] = np.float32(1.0) - others
    return w32


def add_skin_to_glb(data: bytes, skin: Skin, mesh_name: str = "human3d") -> bytes:
    """``data``: a GLB with one mesh whose vertices are in the frame of ``skin`` (export frame) -> the rigged GLB."""
    doc, binary = _split_glb(data)
    buf = _Buffer(doc, binary)
    n_joints = len(skin.joint_names)
    joints = np.asarray(skin.joints)
    weights = _weights_f32(skin.weights)
    joints = np.where(weights > 0, joints, 0)  # an unused slot names joint 0 (the validator asks for it)
    jtype = _UBYTE if n_joints <= 256 else _USHORT
    j_acc = buf.add(joints.astype(np.uint8 if jtype == _UBYTE else np.uint16), jtype, "VEC4", target=_ARRAY_BUFFER)
    w_acc = buf.add(weights, _FLOAT, "VEC4", target=_ARRAY_BUFFER)
    ibm = np.linalg.inv(skin.bind_matrices)
    ibm[:, 3, :] = (0.0, 0.0, 0.0, 1.0)
    ibm_acc = buf.add(np.transpose(ibm, (0, 2, 1)).astype(np.float32).reshape(n_joints, 16), _FLOAT, "MAT4")
    for prim in doc["meshes"][0]["primitives"]:
        prim["attributes"]["JOINTS_0"] = j_acc
        prim["attributes"]["WEIGHTS_0"] = w_acc
    bind = skin.bind_matrices
    nodes = [{"name": mesh_name, "mesh": 0, "skin": 0}]
    roots = []
    for j, (name, parent) in enumerate(zip(skin.joint_names, skin.parents)):
        local = bind[j] if parent < 0 else np.linalg.inv(bind[parent]) @ bind[j]
        node: dict = {"name": name}
        if np.abs(local[:3, 3]).max() > 0:
            node["translation"] = [float(c) for c in local[:3, 3]]
        q = _quat(local[:3, :3])
        if abs(q[3]) < 1.0 - 1e-9:
            node["rotation"] = q
        nodes.append(node)
        if parent < 0:
            roots.append(1 + j)
        else:
            nodes[1 + int(parent)].setdefault("children", []).append(1 + j)
    doc["nodes"] = nodes
    doc["scenes"] = [{"nodes": [0, *roots]}]
    doc["scene"] = 0
    skin_doc: dict = {"joints": list(range(1, n_joints + 1)), "inverseBindMatrices": ibm_acc, "name": "human3d_rig"}
    if len(roots) == 1:
        skin_doc["skeleton"] = roots[0]
    extras = {"humanoid": dict(skin.humanoid), "rest_pose": skin.rest_pose}
    skin_doc["extras"] = extras
    doc["skins"] = [skin_doc]
    if skin.clip_name:
        doc["animations"] = [_animation(buf, skin)]
    return _join_glb(doc, buf.finish())


def _quat(m: np.ndarray) -> list[float]:
    from scipy.spatial.transform import Rotation

    return [float(c) for c in Rotation.from_matrix(m).as_quat()]


def _animation(buf: _Buffer, skin: Skin) -> dict:
    t_acc = buf.add(np.asarray(skin.clip_times, np.float32), _FLOAT, "SCALAR", min_max=True)
    samplers, channels = [], []
    rot = np.asarray(skin.clip_rotations, np.float32)
    for a, joint in enumerate(np.asarray(skin.clip_joints)):
        q = rot[:, a] / np.linalg.norm(rot[:, a], axis=1, keepdims=True)
        r_acc = buf.add(q.astype(np.float32), _FLOAT, "VEC4")
        samplers.append({"input": t_acc, "output": r_acc, "interpolation": "LINEAR"})
        channels.append({"sampler": a, "target": {"node": 1 + int(joint), "path": "rotation"}})
    return {"name": skin.clip_name, "samplers": samplers, "channels": channels}


# ---------------------------------------------------------------------------------------------------------------
# Reading back (for `human3d render`: play the clip)

_NUMPY = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
_WIDTH = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


def _accessor(doc: dict, binary: bytes, index: int) -> np.ndarray:
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = np.dtype(_NUMPY[acc["componentType"]])
    width = _WIDTH[acc["type"]]
    start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
    stride = view.get("byteStride", dtype.itemsize * width)
    rows = [np.frombuffer(binary, dtype, width, start + i * stride) for i in range(acc["count"])] \
        if stride != dtype.itemsize * width else \
        [np.frombuffer(binary, dtype, acc["count"] * width, start)]
    out = np.concatenate(rows).reshape(acc["count"], width)
    if acc.get("normalized"):
        out = out.astype(np.float32) / np.iinfo(dtype).max
    return out


def read_glb_skin(path: str | Path) -> Skin | None:
    """The skin (and its first clip) of a GLB written by :func:`add_skin_to_glb`, or None for a static GLB.

    Its ``joints``/``weights`` follow the GLB's vertex order, which :func:`human3d.io.meshes.read_mesh` keeps.
    """
    doc, binary = _split_glb(Path(path).read_bytes())
    if not doc.get("skins"):
        return None
    sk = doc["skins"][0]
    node_of = {n: j for j, n in enumerate(sk["joints"])}
    names = [doc["nodes"][n].get("name", f"joint{j}") for j, n in enumerate(sk["joints"])]
    parents = np.full(len(names), -1, np.int64)
    for n, node in enumerate(doc["nodes"]):
        for c in node.get("children", []):
            if c in node_of and n in node_of:
                parents[node_of[c]] = node_of[n]
    ibm = _accessor(doc, binary, sk["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1)
    prim = doc["meshes"][0]["primitives"][0]["attributes"]
    skin = Skin(joint_names=names, parents=parents, bind_matrices=np.linalg.inv(ibm.astype(np.float64)),
                joints=_accessor(doc, binary, prim["JOINTS_0"]).astype(np.int64),
                weights=_accessor(doc, binary, prim["WEIGHTS_0"]).astype(np.float32),
                humanoid=dict(sk.get("extras", {}).get("humanoid", {})),
                rest_pose=str(sk.get("extras", {}).get("rest_pose", "photo")))
    anims = doc.get("animations") or []
    if anims:
        anim = anims[0]
        moved, rots, times = [], [], None
        for ch in anim["channels"]:
            if ch["target"].get("path") != "rotation" or ch["target"].get("node") not in node_of:
                continue
            sampler = anim["samplers"][ch["sampler"]]
            t = _accessor(doc, binary, sampler["input"]).ravel()
            if times is None:
                times = t
            elif len(t) != len(times) or np.abs(t - times).max() > 1e-6:
                continue  # this reader plays clips whose channels share one timeline (as human3d writes them)
            moved.append(node_of[ch["target"]["node"]])
            rots.append(_accessor(doc, binary, sampler["output"]).astype(np.float32))
        if moved:
            skin.clip_name = anim.get("name", "clip")
            skin.clip_times = times.astype(np.float32)
            skin.clip_joints = np.asarray(moved, np.int64)
            skin.clip_rotations = np.stack(rots, 1)
    return skin


def posed_vertices(skin: Skin, vertices: np.ndarray, t: float) -> np.ndarray:
    """(V, 3) bind-pose vertices skinned at time ``t`` of the skin's clip (the bind pose without a clip)."""
    from scipy.spatial.transform import Rotation

    from human3d.rig.animation import sample_clip

    bind = skin.bind_matrices
    local_bind = np.array([bind[j] if p < 0 else np.linalg.inv(bind[p]) @ bind[j]
                           for j, p in enumerate(skin.parents)])
    local = local_bind.copy()
    if skin.clip_name and skin.clip_times is not None:
        q = sample_clip(skin.clip_times, skin.clip_rotations, t)
        local[skin.clip_joints, :3, :3] = Rotation.from_quat(q).as_matrix()
    world = np.empty_like(local)
    for j in _order(skin.parents):
        p = skin.parents[j]
        world[j] = local[j] if p < 0 else world[p] @ local[j]
    mats = world @ np.linalg.inv(bind)
    m = np.einsum("nk,nkab->nab", skin.weights.astype(np.float64), mats[skin.joints][:, :, :3, :])
    v = np.asarray(vertices, np.float64)
    return (np.einsum("nab,nb->na", m[:, :, :3], v) + m[:, :, 3]).astype(np.float32)


def _order(parents: np.ndarray) -> list[int]:
    """Joint indices with every parent before its children."""
    done: list[int] = []
    seen = set()

    def visit(j: int) -> None:
        if j in seen:
            return
        if parents[j] >= 0:
            visit(int(parents[j]))
        seen.add(j)
        done.append(j)

    for j in range(len(parents)):
        visit(j)
    return done
