"""Does the embedded multi-view prior earn its carving? Clothed people made here, rendered as photos, reconstructed,
and the final mesh scored against the ground truth next to the fitted body it started from.

    PYTHONPATH=. .venv/bin/python benchmarks/embedded_quality.py [--preset default|fast] [--subjects skirt,cesium]
        [--work DIR] [--sheets DIR] [--photo-height 1024] [--backend prior]

Subjects (human3d.eval.subjects): posed Anny bodies with generated clothing (skirt: a flared skirt and long hair;
coat: a long coat; hood: a hoodie with its hood up) and the shared CesiumMan (glTF sample model, CC-BY 4.0,
(c) 2017 Cesium; ../shared/data). Each ground truth is a closed, vertex-coloured mesh in metres in the export frame;
its photo is a front render (head-light shading) on a plain background, RGB, so segmentation runs as on a real
photo. Each photo goes through the library's pipeline (human3d.pipeline.Reconstructor) up to the texture stage; the
fitted body is put into the final mesh's metric export frame (the export transform, human3d.io.meshes); both are
scored with the metrics of ``human3d eval`` after fair alignment (same height and box centre, then rigid ICP):
Chamfer in % of height, normal consistency, F-score at 1 cm. The last line names the mean Chamfer improvement.
"body" is the fitted body as the pipeline gives it, with its clothing and hair offsets (the baseline of the
improvement); "bare" is the body model's own surface without them (human3d.eval.improvement.bare_vertices).

``--work DIR`` keeps the ground truths, photos and every stage's output (DIR/<subject>/stages): a rerun reuses all
of it that is still valid (the pipeline's own cache keys). ``--sheets DIR`` writes DIR/<subject>.png: the photo and
the final mesh at 0, 90 and 180 degrees, and below them the fitted body at 90 degrees and the ground truth at 0, 90 and
180 degrees. Seconds are wall time per subject and stage, of the run that computed each stage (a rerun that reuses a
stage reports the seconds it took then).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from human3d.eval.improvement import Row, bare_vertices, in_export_frame, subject_row, table  # noqa: E402
from human3d.eval.subjects import SUBJECTS, Subject, make_subject, subject_photo  # noqa: E402
from human3d.types import TexturedMesh  # noqa: E402

SHARED = Path(os.environ.get("HUMAN3D_SHARED_DATA", REPO.parent / "shared" / "data"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="default", choices=("fast", "default", "quality"))
    ap.add_argument("--subjects", default=",".join(SUBJECTS), help=f"comma-separated, from {', '.join(SUBJECTS)}")
    ap.add_argument("--work", type=Path, default=None, help="keep photos, truths and stage outputs here")
    ap.add_argument("--sheets", type=Path, default=None, help="write a contact sheet per subject here")
    ap.add_argument("--photo-height", type=int, default=1024)
    ap.add_argument("--backend", default="prior", help="multi-view backend (the embedded one: prior)")
    ap.add_argument("--points", type=int, default=100_000, help="surface samples per mesh for the metrics")
    args = ap.parse_args(argv)
    args.subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
    unknown = [s for s in args.subjects if s not in SUBJECTS]
    if unknown:
        ap.error(f"unknown subject(s) {', '.join(unknown)}; choose from {', '.join(SUBJECTS)}")
    if not 512 <= args.photo_height <= 4096:
        ap.error("--photo-height must be between 512 and 4096 pixels")
    return args


def _subject_key(name: str, photo_height: int) -> str:
    """What a stored subject depends on: the code that makes it and the photo size."""
    h = hashlib.sha256(f"{name} {photo_height}".encode())
    for module in ("human3d/eval/subjects.py", "human3d/body/synthetic.py", "human3d/eval/bench.py"):
        h.update((REPO / module).read_bytes())
    return h.hexdigest()


def prepare(name: str, folder: Path, photo_height: int, model: object) -> tuple[Subject, Path]:
    """The subject and its photo (folder/photo.png), made once and kept in ``folder`` while their code is the same."""
    from PIL import Image

    key = _subject_key(name, photo_height)
    photo = folder / "photo.png"
    key_file = folder / "subject_key.txt"
    if key_file.is_file() and key_file.read_text() == key:
        truth = TexturedMesh.load(folder / "truth")
        body = np.load(folder / "body.npz") if (folder / "body.npz").is_file() else None
        return Subject(name, truth, None if body is None else (body["vertices"], body["faces"])), photo
    subject = make_subject(name, model, shared=SHARED)
    folder.mkdir(parents=True, exist_ok=True)
    subject.mesh.save(folder / "truth")
    if subject.body is not None:
        np.savez(folder / "body.npz", vertices=subject.body[0], faces=subject.body[1])
    Image.fromarray(subject_photo(subject.mesh, photo_height)).save(photo)
    key_file.write_text(key)
    return subject, photo


def reconstruct(photo: Path, stages: Path, preset: str, backend: str):
    """Run the pipeline on ``photo`` up to the texture stage, caching in ``stages``."""
    from human3d.config import preset_config
    from human3d.pipeline import Reconstructor

    cfg = preset_config(preset, device="cpu", seed=0)
    cfg.multiview.backend = backend
    return Reconstructor(cfg).run(photo, work_dir=stages, until="texture")


def score(name: str, truth: TexturedMesh, result, points: int) -> Row:
    """The table row of one reconstructed subject."""
    body, final = result.results["body"], result.results["texture"]
    body_v, final_v = in_export_frame(body, final)
    notes = []
    if not body.report.get("landmarks", True):
        notes.append("no landmarks")
    if body.report.get("facing") == "away":
        notes.append("fit: seen from behind")
    bare = None
    if body.offsets is not None:  # the body model's own surface, in the same export frame as the fitted body
        bare = (_to_export(bare_vertices(body), body, final), body.faces)
    return subject_row(name, truth, (body_v, body.faces), (final_v, final.faces),
                       seconds=sum(result.timings.values()), notes=tuple(notes), n_points=points, bare=bare)


def _to_export(vertices: np.ndarray, body, final) -> np.ndarray:
    """Canonical ``vertices`` under the final mesh's export transform (as :func:`in_export_frame` moves the body)."""
    import dataclasses

    return in_export_frame(dataclasses.replace(body, vertices=vertices), final)[0]


def write_sheet(path: Path, truth: TexturedMesh, result, tile: int = 384) -> None:
    """Photo | final 0, 90, 180 degrees; below: fitted body at 90 degrees | ground truth at 0, 90, 180 degrees."""
    import dataclasses

    from PIL import Image, ImageDraw

    from human3d.cameras import OrthoCamera
    from human3d.carve.synthetic import fit_to_canvas
    from human3d.io.previews import PREVIEW_BACKGROUND, preview_image
    from human3d.render import get_rasterizer
    from human3d.render.turntable import render_shaded

    values = result.results
    final, body = values["texture"], values["body"]
    top = preview_image(values["load"], values["frame"], final, tile=tile)
    # the truth framed on the canvas as the framing stage frames a standing person (its own height, centred)
    truth_c = dataclasses.replace(truth, vertices=fit_to_canvas(truth.vertices), normals=None)
    raster = get_rasterizer("auto", "cpu")
    cams = [OrthoCamera(f"sheet{a:g}", a, tile) for a in (90.0, 0.0, 90.0, 180.0)]
    panels = render_shaded(TexturedMesh(vertices=body.vertices, faces=body.faces), cams[:1], raster=raster,
                           background=PREVIEW_BACKGROUND)
    panels += render_shaded(truth_c, cams[1:], raster=raster, background=PREVIEW_BACKGROUND)
    step = (top.shape[1] + (top.shape[1] - 4 * tile) // 3) // 4  # panel + gap, as in the preview above
    row = np.full((tile, top.shape[1], 3), 64, np.uint8)
    for i, p in enumerate(panels):
        row[:, i * step:i * step + tile] = p
    image = Image.fromarray(np.concatenate([top, np.full((4, top.shape[1], 3), 64, np.uint8), row], 0))
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(("fitted body 90°", "truth 0°", "truth 90°", "truth 180°")):
        draw.text((i * step + 6, top.shape[0] + 8), text, fill=(40, 40, 40))
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def run_subject(name: str, args: argparse.Namespace, work: Path, model: object) -> tuple[Row, dict[str, float]]:
    """Make, reconstruct and score one subject (and write its sheet when asked): its row and stage seconds."""
    t0 = time.perf_counter()
    subject, photo = prepare(name, work / name, args.photo_height, model)
    result = reconstruct(photo, work / name / "stages", args.preset, args.backend)
    result.timings = stage_seconds(work / name / "stages", result.timings)
    row = score(name, subject.mesh, result, args.points)
    if args.sheets is not None:
        write_sheet(args.sheets / f"{name}.png", subject.mesh, result)
    print(f"{name}: {time.perf_counter() - t0:.0f} s (stages {row.seconds:.0f} s)", file=sys.stderr, flush=True)
    return row, dict(result.timings)


def stage_seconds(stages: Path, ran: dict[str, float]) -> dict[str, float]:
    """Seconds of every stage of the result in ``stages``: those that ran now, and for those reused from the work
    dir the seconds of the run that computed them (kept in stages/seconds.json beside each stage's cache key)."""
    import json

    from human3d.pipeline import STAGE_NAMES

    store = stages / "seconds.json"
    known = json.loads(store.read_text()) if store.is_file() else {}
    out = {}
    for index, name in enumerate(STAGE_NAMES):
        key_file = stages / f"{index}_{name}" / "key.txt"
        key = key_file.read_text().strip() if key_file.is_file() else None
        if name in ran:
            known[name] = {"key": key, "seconds": ran[name]}
        if key is not None and known.get(name, {}).get("key") == key:
            out[name] = float(known[name]["seconds"])
    store.write_text(json.dumps(known, indent=1))
    return out


def stage_table(timings: dict[str, dict[str, float]]) -> str:
    """Seconds per stage and subject (blank: reused from a run that did not record them)."""
    from human3d.pipeline import STAGE_NAMES

    stages = [s for s in STAGE_NAMES if s != "rig"]
    lines = ["| subject | " + " | ".join(stages) + " |", "|---" * (len(stages) + 1) + "|"]
    for name, t in timings.items():
        lines.append(f"| {name} | " + " | ".join(f"{t[s]:.1f}" if s in t else "" for s in stages) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import os

    import torch

    from human3d.body.models import AnnyBody
    from human3d.errors import Human3DError

    args = parse_args(argv)
    torch.set_num_threads(1)
    work = args.work or Path(tempfile.mkdtemp(prefix="human3d-embedded-"))
    model = AnnyBody("cpu") if any(s != "cesium" for s in args.subjects) else None
    load_before = os.getloadavg()[0]
    rows, timings, failed = [], {}, []
    for name in args.subjects:
        try:
            row, timings[name] = run_subject(name, args, work, model)
            rows.append(row)
        except Human3DError as err:  # one subject the pipeline refuses is reported; the others still count
            failed.append(f"{name}: {type(err).__name__}: {err}")
    print(f"preset {args.preset}, backend {args.backend}, photos {args.photo_height} px tall, work dir {work}, "
          f"{os.cpu_count()} CPUs, load average {load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end")
    print(table(rows))
    print()
    print(stage_table(timings))
    for line in failed:
        print(f"failed: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
