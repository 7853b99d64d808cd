"""Previews and the batch report, with the fast stand-in pipeline of tests/cli/fastpipe.py: `reconstruct --preview`
writes a 4-panel PNG whose front panel is the input silhouette; a batch writes previews and report.html, which
headless Chromium opens from a file:// URL with no console errors and a working 3D viewer."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from human3d import pipeline
from human3d.cli import app
from human3d.io.previews import caption_height
from human3d.report import find_viewer_js, write_report
from human3d.types import Framed
from tests.browser import Chromium, find_chromium
from tests.cli.fastpipe import FAST_STAGES, fast_pipeline, person_photo  # noqa: F401  (fixture)
from tests.pictures import PREVIEW_BG, cropped, front_panel, iou, panels_of, silhouette

runner = CliRunner()
SCREENSHOT = Path("/tmp/human3d_report_test.png")  # the whole page with its first viewer open, for people to see


def test_preview_has_four_panels_and_its_front_view_is_the_input_silhouette(tmp_path, fast_pipeline):  # noqa: F811
    photo = person_photo(tmp_path / "person.png")
    out = tmp_path / "person.glb"
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(out), "--preview", "--json",
                            "--work-dir", str(tmp_path / "work")])
    assert r.exit_code == 0, r.output
    item = json.loads(r.stdout)["items"][0]
    preview = tmp_path / "person_preview.png"
    assert item["preview"] == str(preview) and item["files"] == [str(out)]
    assert item["triangles"] > 1000 and item["height_m"] == pytest.approx(1.75)
    assert item["mesh_height_m"] == pytest.approx(1.75, rel=0.02) and item["timings"]["preview"] > 0
    assert item["backends"]["segment"] == "alpha"

    image = np.asarray(Image.open(preview).convert("RGB"))
    panels = panels_of(image)
    assert len(panels) == 4
    tile = panels[0].shape[1]
    assert all(p.shape == (caption_height(tile) + tile, tile, 3) for p in panels)
    framed = Framed.load(tmp_path / "work" / "2_frame")  # the input mask, placed in the canvas
    mask = np.asarray(Image.fromarray(framed.mask).resize((tile, tile), Image.NEAREST))
    assert iou(silhouette(front_panel(image, 1), PREVIEW_BG), mask) > 0.85
    # seen from behind: the mirror image
    assert iou(silhouette(front_panel(image, 3), PREVIEW_BG), mask[:, ::-1]) > 0.85

    # the preview is an output like the mesh: never replaced without --overwrite, refused before any work
    out.unlink()
    before = preview.read_bytes()
    r = runner.invoke(app, ["reconstruct", str(photo), "-o", str(out), "--preview"])
    assert r.exit_code == 2 and "--overwrite" in r.stderr and not out.exists() and preview.read_bytes() == before


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """A batch of two good photos and one broken file, run through the CLI: previews and report by default."""
    tmp_path = tmp_path_factory.mktemp("batch")
    folder = tmp_path / "in"
    folder.mkdir()
    person_photo(folder / "alice.png", (300, 400), seed=0)
    person_photo(folder / "bob.png", (360, 420), seed=1)
    (folder / "broken.png").write_bytes(b"this is not an image")
    out = tmp_path / "out"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pipeline, "STAGES", FAST_STAGES)
        r = runner.invoke(app, ["reconstruct", str(folder), "-o", str(out), "--json"], env={"NO_COLOR": "1"})
    assert r.exit_code == 1, r.output
    return out, json.loads(r.stdout)


def test_batch_writes_previews_json_and_an_offline_report(batch):
    out, data = batch
    by_name = {Path(i["input"]).name: i for i in data["items"]}
    assert [by_name[n]["status"] for n in ("alice.png", "bob.png", "broken.png")] == ["ok", "ok", "failed"]
    assert by_name["alice.png"]["preview"] == str(out / "previews" / "alice_preview.png")
    assert Path(by_name["bob.png"]["preview"]).is_file() and by_name["broken.png"]["preview"] is None
    assert data["report"] == str(out / "report.html")
    page = (out / "report.html").read_text()
    assert page.count('<tr class="item') == 3
    assert "http://" not in page and "https://" not in page  # nothing from the network
    assert "not an image" in page.split('data-input="broken.png"')[1].split("</tr>")[0]


def test_report_without_the_viewer_script_says_how_to_get_it(batch, monkeypatch, tmp_path):
    out = shutil.copytree(batch[0], tmp_path / "copy")
    monkeypatch.setattr("human3d.report.find_viewer_js", lambda: None)
    shutil.rmtree(out / "report_files")
    result = write_report(out)
    page = result.path.read_text()
    assert not result.viewer and "make install" in page and "@google/model-viewer" in page
    assert "<script src=" not in page and page.count('<tr class="item') == 3 and "previews/alice_preview.png" in page


def test_report_command_refuses_what_it_did_not_write(tmp_path, batch):
    out = shutil.copytree(batch[0], tmp_path / "copy")
    r = runner.invoke(app, ["report", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "not a folder" in r.stderr
    (out / "report.html").write_text("<html>my own notes</html>")
    r = runner.invoke(app, ["report", str(out)])
    assert r.exit_code == 2 and "--overwrite" in r.stderr
    assert (out / "report.html").read_text() == "<html>my own notes</html>"
    r = runner.invoke(app, ["report", str(out), "--overwrite", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["rows"] == 3


def test_report_opens_offline_in_chromium_with_a_working_viewer(batch, tmp_path, monkeypatch):
    exe = find_chromium()
    if exe is None:
        pytest.skip("chromium is absent (make install adds Debian's package when apt is there and you are root)")
    if find_viewer_js() is None:
        pytest.skip("the model-viewer script is absent (make install vendors it from npm into .tools)")
    out = shutil.copytree(batch[0], tmp_path / "copy")
    add_spin_animation(out / "bob.glb")  # exported by the batch; now it turns, for the viewer to play
    summary = json.loads((out / "summary.json").read_text())
    for item in summary["items"]:  # the copy's summary names the copy's files
        item["output"] = str(out / Path(item["output"]).name)
    (out / "summary.json").write_text(json.dumps(summary))
    write_report(out)
    browser = Chromium(exe, tmp_path / "profile")
    try:
        session = browser.page((out / "report.html").resolve().as_uri())
        rows = browser.evaluate(session, "[...document.querySelectorAll('tr.item')].map(r => "
                                         "[r.dataset.input, r.dataset.status, r.querySelector('.err').textContent])")
        assert [r[:2] for r in rows] == [["alice.png", "ok"], ["bob.png", "ok"], ["broken.png", "failed"]]
        assert "not an image" in rows[2][2]
        browser.evaluate(session, "(() => { const d = document.querySelector('tr.st-ok details'); d.open = true;"
                                  " d.querySelector('button.view3d').click(); return true; })()")
        state = wait_for_viewer(browser, session)
        assert state == "loaded", browser.errors()
        rect = browser.evaluate(session, "(() => { const v = document.querySelector('.viewer model-viewer');"
                                         " v.scrollIntoView(); const r = v.getBoundingClientRect();"
                                         " return {x: r.x + scrollX, y: r.y + scrollY, width: r.width,"
                                         " height: r.height}; })()")
        shot = np.asarray(Image.open(io.BytesIO(browser.screenshot(session, rect))).convert("RGB"))
        SCREENSHOT.write_bytes(browser.screenshot(session, page_clip(browser, session)))
        turned, zoomed = orbit_and_zoom(browser, session, rect)
        browser.evaluate(session, "(() => { const d = document.querySelectorAll('tr.st-ok details')[1];"
                                  " d.open = true; d.querySelector('button.view3d').click(); return true; })()")
        assert wait_for_viewer(browser, session, index=1) == "loaded", browser.errors()
        animation = browser.evaluate(session, "(() => { const v = document.querySelectorAll('model-viewer');"
                                              " return [v.length, v[0].availableAnimations, v[0].paused,"
                                              " v[0].currentTime]; })()")
        # the same report on a machine without the viewer script: no errors either, and it says how to get it
        bare = shutil.copytree(out, tmp_path / "bare", ignore=shutil.ignore_patterns("report_files", "report.html"))
        monkeypatch.setattr("human3d.report.find_viewer_js", lambda: None)
        write_report(bare)
        bare_session = browser.page((bare / "report.html").resolve().as_uri())
        note = browser.evaluate(bare_session, "document.getElementById('viewer-note').innerText")
        bare_rows = browser.evaluate(bare_session, "document.querySelectorAll('tr.item').length")
        errors = browser.errors()
    finally:
        browser.close()
    assert errors == []
    assert "make install" in note and bare_rows == 3
    assert animation[:3] == [1, ["spin"], False] and animation[3] > 0  # one viewer open; its animation plays
    model = silhouette(shot, (0xEE, 0xF0, 0xF3), tol=10)  # the viewer's background colour
    assert 0.03 < model.mean() < 0.6, model.mean()
    preview = np.asarray(Image.open(out / "previews" / "alice_preview.png").convert("RGB"))
    expected = silhouette(front_panel(preview), PREVIEW_BG)
    assert iou(cropped(model), cropped(expected)) > 0.6  # same figure, perspective vs orthographic
    turned = silhouette(turned, (0xEE, 0xF0, 0xF3), tol=10)
    assert iou(turned, model) < 0.8  # dragging orbits the camera: the figure is seen from elsewhere
    assert silhouette(zoomed, (0xEE, 0xF0, 0xF3), tol=10).mean() > 1.2 * turned.mean()  # the wheel zooms in


def orbit_and_zoom(browser: Chromium, session: str, rect: dict) -> tuple[np.ndarray, np.ndarray]:
    """Drag across the viewer, screenshot; turn the mouse wheel over it, screenshot."""
    import time

    def mouse(kind: str, x: float, **extra) -> None:
        browser.call("Input.dispatchMouseEvent", session, type=kind, x=x, y=view_y + rect["height"] / 2,
                     button="left", clickCount=1, **extra)

    view_y = browser.evaluate(session, "document.querySelector('.viewer model-viewer').getBoundingClientRect().y")
    left = browser.evaluate(session, "document.querySelector('.viewer model-viewer').getBoundingClientRect().x")
    mouse("mousePressed", left + 100)
    for k in range(1, 11):
        mouse("mouseMoved", left + 100 + 20 * k, buttons=1)
    mouse("mouseReleased", left + 300)
    time.sleep(2.0)  # the camera eases into place
    turned = np.asarray(Image.open(io.BytesIO(browser.screenshot(session, rect))).convert("RGB"))
    browser.call("Input.dispatchMouseEvent", session, type="mouseWheel", x=left + rect["width"] / 2,
                 y=view_y + rect["height"] / 2, deltaX=0, deltaY=-600)
    time.sleep(2.0)
    zoomed = np.asarray(Image.open(io.BytesIO(browser.screenshot(session, rect))).convert("RGB"))
    return turned, zoomed


def wait_for_viewer(browser: Chromium, session: str, index: int = 0, timeout: float = 120.0) -> str:
    import time

    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = browser.evaluate(session, f"document.querySelectorAll('.viewer')[{index}].dataset.state")
        if state in ("loaded", "error"):
            break
        time.sleep(0.25)
    time.sleep(1.0)  # a few more frames drawn
    return state


def page_clip(browser: Chromium, session: str) -> dict:
    w, h = browser.evaluate(session, "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    return {"x": 0, "y": 0, "width": w, "height": h}


def add_spin_animation(glb: Path) -> None:
    """Give the GLB's mesh node a one-turn rotation animation named 'spin' (keys at 0, 1, 2, 3 s)."""
    data = glb.read_bytes()
    jlen = int.from_bytes(data[12:16], "little")
    doc = json.loads(data[20:20 + jlen])
    blen = int.from_bytes(data[20 + jlen:24 + jlen], "little")
    binary = bytearray(data[28 + jlen:28 + jlen + blen])
    times = np.arange(4, dtype=np.float32)
    angles = np.radians([0, 120, 240, 360]) / 2
    quats = np.stack([np.zeros(4), np.sin(angles), np.zeros(4), np.cos(angles)], 1).astype(np.float32)
    views, accessors = doc["bufferViews"], doc["accessors"]
    for array, kind in ((times, "SCALAR"), (quats, "VEC4")):
        binary += b"\0" * (-len(binary) % 4)
        views.append({"buffer": 0, "byteOffset": len(binary), "byteLength": array.nbytes})
        binary += array.tobytes()
        accessors.append({"bufferView": len(views) - 1, "componentType": 5126, "count": len(array), "type": kind})
    accessors[-2].update(min=[0.0], max=[3.0])
    node = next(i for i, n in enumerate(doc["nodes"]) if "mesh" in n)
    doc["animations"] = [{"name": "spin", "samplers": [{"input": len(accessors) - 2, "output": len(accessors) - 1,
                                                        "interpolation": "LINEAR"}],
                          "channels": [{"sampler": 0, "target": {"node": node, "path": "rotation"}}]}]
    binary += b"\0" * (-len(binary) % 4)
    doc["buffers"][0]["byteLength"] = len(binary)
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    body = (len(text).to_bytes(4, "little") + b"JSON" + text + len(binary).to_bytes(4, "little") + b"BIN\0"
            + bytes(binary))
    glb.write_bytes(b"glTF" + (2).to_bytes(4, "little") + (12 + len(body)).to_bytes(4, "little") + body)
