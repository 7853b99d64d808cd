"""A small glTF 2.0 binary (GLB) writer for one textured triangle mesh.

trimesh's exporter cannot write TANGENT (nor skins), so the GLB is assembled here: :class:`GlbBuilder` packs
arrays into one buffer (one 4-byte-aligned buffer view per accessor) and :func:`mesh_glb` describes the mesh.
To add an attribute (e.g. JOINTS_0 / WEIGHTS_0 for a skin), add an accessor and name it in the primitive's
``attributes``; nodes and skins go in ``builder.json`` before :meth:`GlbBuilder.glb` is called.

Units and frame are the caller's (the export frame: metres, +Y up, facing +Z). UVs are given in this project's
convention (v up) and flipped to glTF's (v down) here.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963
_COMPONENT = {np.dtype(np.float32): 5126, np.dtype(np.uint32): 5125, np.dtype(np.uint16): 5123,
              np.dtype(np.uint8): 5121}
_TYPE = {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4", 16: "MAT4"}


@dataclass
class GlbBuilder:
    """The glTF JSON being built and the binary buffer it points into."""

    json: dict[str, Any] = field(default_factory=lambda: {
        "asset": {"version": "2.0", "generator": "human3d"}, "buffers": [], "bufferViews": [], "accessors": []})
    _blob: bytearray = field(default_factory=bytearray)

    def add_view(self, data: bytes, target: int | None = None) -> int:
        """Append ``data`` as a buffer view (4-byte aligned); returns its index."""
        self._blob.extend(b"\0" * (-len(self._blob) % 4))
        view: dict[str, Any] = {"buffer": 0, "byteOffset": len(self._blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self._blob.extend(data)
        self.json["bufferViews"].append(view)
        return len(self.json["bufferViews"]) - 1

    def add_accessor(self, array: np.ndarray, target: int | None = ARRAY_BUFFER, *, normalized: bool = False,
                     bounds: bool = False) -> int:
        """(N,) or (N, C) array of float32 / uint8 / uint16 / uint32 -> accessor index (``bounds``: write min/max,
        required for POSITION)."""
        a = np.ascontiguousarray(array)
        if a.dtype not in _COMPONENT:
            raise TypeError(f"glTF has no component type for {a.dtype}")
        width = 1 if a.ndim == 1 else a.shape[1]
        acc: dict[str, Any] = {"bufferView": self.add_view(a.astype(a.dtype.newbyteorder("<")).tobytes(), target),
                               "componentType": _COMPONENT[a.dtype], "count": int(a.shape[0]), "type": _TYPE[width]}
        if normalized:
            acc["normalized"] = True
        if bounds:
            acc["min"] = np.atleast_1d(a.min(0)).astype(float).tolist()
            acc["max"] = np.atleast_1d(a.max(0)).astype(float).tolist()
        self.json["accessors"].append(acc)
        return len(self.json["accessors"]) - 1

    def add_texture(self, png: bytes) -> int:
        """A PNG image with a linear, mip-mapped, repeating sampler -> texture index."""
        j = self.json
        j.setdefault("images", []).append({"bufferView": self.add_view(png), "mimeType": "image/png"})
        if not j.get("samplers"):
            j["samplers"] = [{"magFilter": 9729, "minFilter": 9987, "wrapS": 10497, "wrapT": 10497}]
        j.setdefault("textures", []).append({"sampler": 0, "source": len(j["images"]) - 1})
        return len(j["textures"]) - 1

    def glb(self) -> bytes:
        """The GLB file: header, JSON chunk (space-padded), BIN chunk (zero-padded)."""
        self._blob.extend(b"\0" * (-len(self._blob) % 4))
        self.json["buffers"] = [{"byteLength": len(self._blob)}]
        text = json.dumps(self.json, separators=(",", ":")).encode()
        text += b" " * (-len(text) % 4)
        total = 12 + 8 + len(text) + 8 + len(self._blob)
        return b"".join([struct.pack("<4sII", b"glTF", 2, total), struct.pack("<I4s", len(text), b"JSON"), text,
                         struct.pack("<I4s", len(self._blob), b"BIN\0"), bytes(self._blob)])


def mesh_glb(vertices: np.ndarray, faces: np.ndarray, normals: np.ndarray, *, uvs: np.ndarray | None = None,
             base_color_png: bytes | None = None, normal_png: bytes | None = None, tangents: np.ndarray | None = None,
             vertex_colors: np.ndarray | None = None) -> GlbBuilder:
    """A builder holding one mesh (one node, one scene); call ``.glb()`` for the file's bytes.

    vertices (V, 3), faces (F, 3) counter-clockwise, normals (V, 3) unit; uvs (V, 2), v up; base_color_png and
    normal_png: the textures (both need ``uvs``; the normal map needs ``tangents`` (V, 4)); vertex_colors (V, 3)
    uint8, written as COLOR_0 when there is no texture.
    """
    b = GlbBuilder()
    attributes = {"POSITION": b.add_accessor(np.asarray(vertices, np.float32), bounds=True),
                  "NORMAL": b.add_accessor(np.asarray(normals, np.float32))}
    material: dict[str, Any] = {"pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0},
                                "doubleSided": False}
    if uvs is not None and base_color_png is not None:
        flipped = np.stack([uvs[:, 0], 1.0 - uvs[:, 1]], 1).astype(np.float32)
        attributes["TEXCOORD_0"] = b.add_accessor(flipped)
        material["pbrMetallicRoughness"]["baseColorTexture"] = {"index": b.add_texture(base_color_png)}
        if normal_png is not None:
            if tangents is None:
                raise ValueError("a normal map needs tangents")
            attributes["TANGENT"] = b.add_accessor(np.asarray(tangents, np.float32))
            material["normalTexture"] = {"index": b.add_texture(normal_png)}
    elif vertex_colors is not None:
        rgba = np.concatenate([vertex_colors[:, :3], np.full((len(vertex_colors), 1), 255)], 1).astype(np.uint8)
        attributes["COLOR_0"] = b.add_accessor(rgba, normalized=True)
    index_type = np.uint16 if len(vertices) < 65535 else np.uint32
    indices = b.add_accessor(np.asarray(faces).reshape(-1).astype(index_type), ELEMENT_ARRAY_BUFFER)
    b.json.update(materials=[material], meshes=[{"primitives": [
        {"attributes": attributes, "indices": indices, "material": 0, "mode": 4}]}],
        nodes=[{"mesh": 0, "name": "human3d"}], scenes=[{"nodes": [0]}], scene=0)
    return b
