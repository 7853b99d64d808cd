"""`make demo`: reconstruct a person the project makes itself, then the shared sample photos when present.

1. Render a posed Anny body (CC0 model, offline) with clothes-like colours to an RGBA photo: demo_output/person.png.
2. `human3d reconstruct` it to demo_output/person.glb (work dir demo_output/work/person, with a contact sheet of the
   views) and render a turntable video demo_output/person.mp4.
3. If ../shared/data/photos exists, reconstruct those photos as a batch into demo_output/photos/.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "photos"
OUT = REPO / "demo_output"


def make_person_photo(path: Path, pose: str = "arms_raised", seed: int = 3, resolution: int = 768,
                      yaw_deg: float = 15.0) -> Path:
    """Write an RGBA photo of a posed, shaded Anny body (alpha = its exact silhouette)."""
    from PIL import Image

    from human3d.body.models import load_body_model
    from human3d.body.synthetic import make_body, random_pose, shaded_image

    model = load_body_model("anny")
    body = make_body(model, random_pose(pose, seed, jitter=0.05), yaw_deg=yaw_deg, resolution=resolution)
    rgb = shaded_image(body, model)
    rgba = np.concatenate([rgb, (body.mask * 255).astype(np.uint8)[..., None]], -1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgba, "RGBA").save(path)
    return path


def human3d(*args: str) -> int:
    cmd = [sys.executable, "-m", "human3d", *args]
    print("+ human3d", " ".join(args), file=sys.stderr, flush=True)
    return subprocess.call(cmd, cwd=REPO)


def main() -> int:
    photo = make_person_photo(OUT / "person.png")
    rc = human3d("reconstruct", str(photo), "-o", str(OUT / "person.glb"), "--overwrite",
                 "--work-dir", str(OUT / "work" / "person"))
    if rc != 0:
        return rc
    rc = human3d("render", str(OUT / "person.glb"), "--turntable", str(OUT / "person.mp4"), "--overwrite",
                 "--image", str(OUT / "person_front.png"))
    if rc != 0:
        return rc
    if SHARED.is_dir():
        rc = human3d("reconstruct", str(SHARED), "-o", str(OUT / "photos"), "--preset", "fast", "--overwrite")
    print(f"demo: results in {OUT}", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
