"""`make demo`: reconstruct the shared sample photos (when present) with the embedded backends.

Writes into demo_output/. Until every stage is available the run stops at the first missing stage with exit 4.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "photos"


def main() -> int:
    out = REPO / "demo_output"
    inputs = sorted(SHARED.glob("*.png")) if SHARED.is_dir() else []
    if not inputs:
        print("demo: no input found; the demo needs ../shared/data/photos", file=sys.stderr)
        return 2
    cmd = [sys.executable, "-m", "human3d", "reconstruct", *map(str, inputs), "-o", str(out), "--preset", "fast",
           "--work-dir", str(out / "work")]
    print("demo:", " ".join(cmd), file=sys.stderr)
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
