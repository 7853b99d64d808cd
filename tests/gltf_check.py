"""What a user checks in a GLB: its JSON (attributes, materials) and the Khronos validator's report."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VALIDATOR = REPO / ".tools" / "node_modules" / "gltf-validator"


def glb_json(path: Path) -> dict:
    """The JSON chunk of a .glb file."""
    data = Path(path).read_bytes()
    magic, version, _ = struct.unpack_from("<4sII", data)
    assert magic == b"glTF" and version == 2
    length, kind = struct.unpack_from("<I4s", data, 12)
    assert kind == b"JSON"
    return json.loads(data[20:20 + length])


def khronos_report(path: Path) -> dict:
    """{errors, warnings, messages} from the Khronos glTF validator; skips when node or the validator is absent
    (``make install`` adds it when node is present)."""
    if shutil.which("node") is None or not VALIDATOR.is_dir():
        pytest.skip("node or the gltf-validator npm package is absent (make install adds it when node is present)")
    out = subprocess.run(["node", str(REPO / "tools" / "gltf_validate.js"), str(VALIDATOR), str(path)],
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)
