"""Several people: found and numbered left to right, the intended one picked, ``--person N``, ``human3d people``,
and a neighbour's limb cut from the chosen person's mask. The photo: three rendered Anny bodies side by side."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from human3d.config import SegmentConfig
from human3d.context import StageContext
from human3d.errors import UsageError
from human3d.segment import segment_person
from human3d.types import LoadedImage

pytest.importorskip("mediapipe")

#: (pose, yaw, height of the person as a fraction of the photo's) of the three people, left to right.
PEOPLE = (("a_pose", 15.0, 0.70), ("arms_crossed", 0.0, 0.92), ("lunge", -20.0, 0.78))
SIZE = (1000, 460)


@pytest.fixture(scope="module")
def three_people() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """(H, W, 3) photo of three people on a grey floor-and-wall background, and their true boxes."""
    import torch

    from human3d.body.models import AnnyBody
    from human3d.body.synthetic import make_body, random_pose, shaded_image

    torch.set_num_threads(1)
    model = AnnyBody("cpu")
    w, h = SIZE
    photo = np.empty((h, w, 3), np.uint8)
    photo[:] = (200, 198, 190)
    photo[int(0.8 * h):] = (150, 145, 140)
    boxes = []
    x = 20
    for i, (pose, yaw, frac) in enumerate(PEOPLE):
        body = make_body(model, random_pose(pose, i, jitter=0.05), yaw_deg=yaw, resolution=384)
        rgb, mask = shaded_image(body, model), body.mask
        ys, xs = np.nonzero(mask)
        crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        ph = int(frac * h)
        pw = max(1, round(ph * (xs.max() + 1 - xs.min()) / (ys.max() + 1 - ys.min())))
        im = np.asarray(Image.fromarray(rgb[crop]).resize((pw, ph), Image.BILINEAR))
        m = np.asarray(Image.fromarray(mask[crop].astype(np.uint8) * 255).resize((pw, ph))) > 127
        y = h - ph - 8
        region = photo[y:y + ph, x:x + pw]
        region[m] = im[m]
        boxes.append((x, y, x + pw, y + ph))
        x += pw + 30
    return photo, boxes


def _centre_x(mask: np.ndarray) -> float:
    return float(np.nonzero(mask)[1].mean())


def test_three_people_numbered_left_to_right(three_people):
    from human3d.segment.mediapipe import _pose, import_mediapipe
    from human3d.segment.people import find_people, intended

    photo, boxes = three_people
    with _pose(import_mediapipe()) as pose:
        people = find_people(pose, photo, 0.5)
    assert len(people) == 3
    for p, (x0, _, x1, _) in zip(people, boxes):
        assert x0 - 20 <= (p.box[0] + p.box[2]) / 2 <= x1 + 20
    assert intended(people) == 1  # the complete, central, largest one


def test_person_option_chooses_and_warning_lists_everyone(three_people):
    photo, boxes = three_people
    ctx = StageContext()
    cut = segment_person(LoadedImage(rgb=photo, source="three.png"), SegmentConfig(backend="mediapipe", person=3),
                         ctx)
    assert boxes[2][0] <= _centre_x(cut.mask) <= boxes[2][2]
    (warning,) = [w for w in ctx.warnings if "several people" in w]
    assert "(3, numbered left to right" in warning and "reconstructing person 3" in warning
    assert all(f"{i}: box" in warning for i in (1, 2, 3))
    ctx = StageContext()
    cut = segment_person(LoadedImage(rgb=photo, source="three.png"), SegmentConfig(backend="mediapipe", person=2),
                         ctx)
    assert boxes[1][0] <= _centre_x(cut.mask) <= boxes[1][2]
    with pytest.raises(UsageError, match="choose 1 to 3"):
        segment_person(LoadedImage(rgb=photo, source="three.png"), SegmentConfig(backend="mediapipe", person=4),
                       StageContext())


def test_person_needs_the_mediapipe_backend():
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[10:50, 20:40] = 255
    image = LoadedImage(rgb=rgba[..., :3].copy(), alpha=rgba[..., 3].copy(), source="cut.png")
    with pytest.raises(UsageError, match="--person"):
        segment_person(image, SegmentConfig(person=1), StageContext())


def test_people_command_prints_boxes_and_writes_the_picture(three_people, tmp_path):
    from typer.testing import CliRunner

    from human3d.cli import app

    photo, _ = three_people
    path = tmp_path / "three.png"
    Image.fromarray(photo).save(path)
    out = tmp_path / "boxes.png"
    res = CliRunner().invoke(app, ["people", str(path), "--image", str(out)])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.output.splitlines() if ": box (" in line]
    assert [line.split(":")[0] for line in lines] == ["1", "2", "3"]
    assert "reconstructed by default" in lines[1]
    drawn = np.asarray(Image.open(out).convert("RGB"))
    assert drawn.shape == photo.shape and (drawn != photo).any(axis=2).mean() > 0.005
    again = CliRunner().invoke(app, ["people", str(path), "--image", str(out)])
    assert again.exit_code != 0 and "--overwrite" in again.output


def test_a_neighbours_limb_is_cut():
    from human3d.segment.people import Person, own_probability

    a = np.zeros((40, 60), np.float32)
    b = np.zeros((40, 60), np.float32)
    a[5:35, 5:30] = 0.9
    a[15:20, 30:45] = 0.6  # the neighbour's arm, leaking into the first person's map
    b[5:35, 32:55] = 0.95
    b[15:20, 28:45] = 0.9
    people = [Person((5, 5, 45, 35), 0.3, 1.0, 0.8, a), Person((28, 5, 55, 35), 0.3, 1.0, 0.8, b)]
    own = own_probability(people, 0)
    assert (own[15:20, 30:45] == 0).all() and (own[5:35, 5:28] > 0.5).all()


def test_person_2_is_reconstructed_end_to_end(three_people, tmp_path):
    """``reconstruct --person 2`` through the CLI (fast preset, short settings): the warning lists all three, and
    what is reconstructed is the middle person (arms crossed), not the default pick nor a neighbour."""
    import json

    from typer.testing import CliRunner

    from human3d.body.models import KEYPOINT_NAMES
    from human3d.cli import app
    from human3d.types import BodyFit, Cutout, Framed

    photo, boxes = three_people
    path = tmp_path / "three.png"
    Image.fromarray(photo).save(path)
    work = tmp_path / "work"
    short = ["frame.resolution=256", "body.iterations=40", "multiview.resolution=256", "carve.resolution=128",
             "carve.iterations=4", "carve.edge_length_pixels=4", "carve.body_refine_resolution=64",
             "carve.body_refine_steps=5", "carve.coarse_levels=0", "texture.texture_size=256"]
    args = ["reconstruct", str(path), "-o", str(tmp_path / "two.glb"), "--person", "2", "--preset", "fast",
            "--device", "cpu", "--work-dir", str(work), "--no-rig", "--json"]
    res = CliRunner().invoke(app, args + [a for s in short for a in ("--set", s)])
    assert res.exit_code == 0, res.output
    item = json.JSONDecoder().raw_decode(res.output[res.output.index("{"):])[0]["items"][0]
    (warning,) = [w for w in item["warnings"] if "several people" in w]
    assert "reconstructing person 2" in warning and all(f"{i}: box" in warning for i in (1, 2, 3))
    assert (tmp_path / "two.glb").stat().st_size > 10_000
    # the cutout and the canvas it was framed on are the second person's
    cut = Cutout.load(next(work.glob("*_segment")))
    x0, _, x1, _ = boxes[1]
    assert x0 <= _centre_x(cut.mask) <= x1 and not cut.mask[:, : boxes[0][2]].any()
    framed = Framed.load(next(work.glob("*_frame")))
    centre = framed.canvas_to_photo(np.array([framed.resolution / 2, framed.resolution / 2]))
    assert x0 <= centre[0] <= x1
    # and the body fitted to it has its arms crossed: both wrists in front of the chest, between the shoulders and
    # above the hips (the neighbours' hang at their sides or spread out)
    fit = BodyFit.load(next(work.glob("*_body")))
    kp = {n: np.array(p) for n, p in fit.params["keypoints"].items()}
    assert set(kp) == set(KEYPOINT_NAMES) and fit.report["mask_iou"] > 0.85
    for side in ("left", "right"):
        wrist = kp[f"{side}_wrist"]
        assert kp["right_shoulder"][0] < wrist[0] < kp["left_shoulder"][0]
        assert wrist[1] > max(kp["left_hip"][1], kp["right_hip"][1]) and wrist[2] > kp["left_hip"][2]
