"""A small glTF 2.0 GLB reader written for the tests, independent of human3d's writer: raw chunks, accessors,
node TRS and linear blend skinning as the glTF specification defines them."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

_DTYPES = {5121: "<u1", 5123: "<u2", 5125: "<u4", 5126: "<f4"}
_COUNTS = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


class Glb:
    def __init__(self, path: str | Path) -> None:
        data = Path(path).read_bytes()
        assert data[:4] == b"glTF"
        (json_len,) = struct.unpack("<I", data[12:16])
        assert data[16:20] == b"JSON"
        self.doc = json.loads(data[20:20 + json_len])
        at = 20 + json_len
        (bin_len,) = struct.unpack("<I", data[at:at + 4])
        assert data[at + 4:at + 8] == b"BIN\0"
        self.bin = data[at + 8:at + 8 + bin_len]

    def accessor(self, index: int) -> np.ndarray:
        acc = self.doc["accessors"][index]
        view = self.doc["bufferViews"][acc["bufferView"]]
        n = _COUNTS[acc["type"]]
        dtype = np.dtype(_DTYPES[acc["componentType"]])
        offset = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
        stride = view.get("byteStride", n * dtype.itemsize)
        raw = np.frombuffer(self.bin, np.uint8, count=stride * (acc["count"] - 1) + n * dtype.itemsize,
                            offset=offset)
        rows = np.lib.stride_tricks.as_strided(raw, (acc["count"], n * dtype.itemsize), (stride, 1))
        return np.ascontiguousarray(rows).view(dtype).reshape(acc["count"], n)

    def primitive(self) -> dict:
        return self.doc["meshes"][0]["primitives"][0]

    def positions(self) -> np.ndarray:
        return self.accessor(self.primitive()["attributes"]["POSITION"]).astype(np.float64)

    def faces(self) -> np.ndarray:
        return self.accessor(self.primitive()["indices"]).reshape(-1, 3).astype(np.int64)

    def node_local(self, index: int, rotation: np.ndarray | None = None) -> np.ndarray:
        node = self.doc["nodes"][index]
        if "matrix" in node:
            return np.asarray(node["matrix"], np.float64).reshape(4, 4).T
        m = np.eye(4)
        q = node.get("rotation", [0, 0, 0, 1]) if rotation is None else rotation
        m[:3, :3] = Rotation.from_quat(q).as_matrix() @ np.diag(node.get("scale", [1, 1, 1]))
        m[:3, 3] = node.get("translation", [0, 0, 0])
        return m

    def world_matrices(self, rotations: dict[int, np.ndarray] | None = None) -> dict[int, np.ndarray]:
        """node index -> world matrix, with some nodes' rotations replaced (node -> xyzw quaternion)."""
        rotations = rotations or {}
        out: dict[int, np.ndarray] = {}

        def visit(n: int, parent: np.ndarray) -> None:
            out[n] = parent @ self.node_local(n, rotations.get(n))
            for c in self.doc["nodes"][n].get("children", []):
                visit(c, out[n])

        for root in self.doc["scenes"][self.doc.get("scene", 0)]["nodes"]:
            visit(root, np.eye(4))
        return out

    def skinned(self, rotations: dict[int, np.ndarray] | None = None) -> np.ndarray:
        """The mesh's vertices skinned by its skin with node rotations replaced (glTF 2.0 §3.7.3)."""
        skin = self.doc["skins"][0]
        ibm = self.accessor(skin["inverseBindMatrices"]).reshape(-1, 4, 4).transpose(0, 2, 1).astype(np.float64)
        world = self.world_matrices(rotations)
        joint_mats = np.stack([world[n] @ ibm[i] for i, n in enumerate(skin["joints"])])
        attrs = self.primitive()["attributes"]
        j = self.accessor(attrs["JOINTS_0"]).astype(np.int64)
        w = self.accessor(attrs["WEIGHTS_0"]).astype(np.float64)
        m = np.einsum("vk,vkab->vab", w, joint_mats[j])
        v = self.positions()
        return np.einsum("vab,vb->va", m[:, :3, :3], v) + m[:, :3, 3]

    def joint_node(self, name: str) -> int:
        return next(i for i, n in enumerate(self.doc["nodes"]) if n.get("name") == name)
