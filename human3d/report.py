"""``report.html`` for a batch's output folder: one page, opened from disk with no server and no network, that
shows the summary (counts, times per stage, backends), a row per input (thumbnail, status, seconds, warnings,
error) and, per result, its preview and an interactive 3D viewer of the GLB.

The viewer is Google's ``<model-viewer>`` (npm ``@google/model-viewer``, Apache-2.0, three.js inside), vendored at
install time into ``.tools`` (``make install``) and copied beside the report; it is never loaded from the network.
Browsers refuse ``fetch`` of ``file://`` URLs, so each GLB is also written as a small script that sets its base64
text (``report_files/models/NAME.glb.js``); the page loads one such script when its viewer is opened and closes the
previous viewer, so a page of 500 rows stays light. Without the vendored script the page still shows the table and
the previews and says how to get the viewer.
"""

from __future__ import annotations

import base64
import html
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from human3d.context import log
from human3d.errors import BadInputError, OutputExistsError, UsageError
from human3d.io.atomic import atomic_write_text

REPORT_FILE = "report.html"
ASSETS_DIR = "report_files"
SUMMARY_FILE = "summary.json"
PREVIEWS_DIR = "previews"
VIEWER_PACKAGE = "@google/model-viewer@4.4.0"
VIEWER_JS = "model-viewer-umd.min.js"
GENERATOR = "human3d report"
#: Where the vendored viewer script is looked for: $HUMAN3D_MODEL_VIEWER_JS, then the checkout's .tools folder.
VIEWER_ENV = "HUMAN3D_MODEL_VIEWER_JS"
_NPM_DIST = Path("node_modules") / "@google" / "model-viewer" / "dist" / VIEWER_JS


@dataclass(frozen=True)
class ReportResult:
    """path: the report; rows: inputs listed; viewer: whether the 3D viewer script was bundled; models: GLBs
    made viewable; model_bytes: the size of their script copies."""

    path: Path
    rows: int
    viewer: bool
    models: int
    model_bytes: int


def find_viewer_js() -> Path | None:
    """The vendored ``model-viewer`` script, or None when this machine has none."""
    env = os.environ.get(VIEWER_ENV)
    candidates = [Path(env)] if env else []
    candidates.append(Path(__file__).resolve().parents[1] / ".tools" / _NPM_DIST)
    return next((p for p in candidates if p.is_file()), None)


def load_summary(out_dir: Path) -> dict:
    """The batch summary of ``out_dir`` (``summary.json``)."""
    path = out_dir / SUMMARY_FILE
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir} is not a folder; give the output folder of a batch (reconstruct ... -o FOLDER)")
    if not path.is_file():
        raise UsageError(f"{out_dir} holds no {SUMMARY_FILE}; give the output folder of a batch "
                         "(human3d reconstruct PHOTOS... -o FOLDER writes one)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadInputError(f"cannot read {path}: {err}; rerun the batch to rewrite it") from err
    if not isinstance(data, dict) or not isinstance(data.get("items"), list):
        raise BadInputError(f"{path} is not a human3d batch summary (no 'items' list)")
    return data


def write_report(out_dir: str | Path, *, models: bool = True, overwrite: bool = False,
                 viewer_js: Path | None = None) -> ReportResult:
    """Write ``out_dir/report.html`` (and ``out_dir/report_files/``) from ``out_dir/summary.json``.

    A report.html that human3d wrote is replaced; any other file of that name needs ``overwrite``. ``models``
    False skips the GLB copies (no 3D viewers). ``viewer_js`` defaults to :func:`find_viewer_js`.
    """
    out_dir = Path(out_dir)
    summary = load_summary(out_dir)
    target = out_dir / REPORT_FILE
    if target.exists() and not overwrite and GENERATOR not in target.read_text(errors="replace")[:2000]:
        raise OutputExistsError(f"{target} exists and was not written by human3d; pass --overwrite to replace it")
    assets = out_dir / ASSETS_DIR
    viewer_js = viewer_js or find_viewer_js()
    viewer = models and viewer_js is not None and _vendor_viewer(viewer_js, assets)
    rows, n_models, n_bytes = [], 0, 0
    for index, item in enumerate(summary["items"]):
        row = _row(out_dir, index, item, models)
        n_models += row.model is not None
        n_bytes += row.model_bytes
        rows.append(row)
    page = _page(summary, rows, viewer, models, out_dir)
    atomic_write_text(target, page)
    return ReportResult(target, len(rows), bool(viewer), n_models, n_bytes)


def write_batch_report(out_dir: Path) -> Path | None:
    """The end of a batch: write the report, and never let a report problem change the batch's outcome."""
    try:
        return write_report(out_dir).path
    except Exception as err:  # the batch's results and summary are already safe on disk
        log.warning("could not write %s (%s); run `human3d report %s` to retry", out_dir / REPORT_FILE, err, out_dir)
        return None


def _vendor_viewer(viewer_js: Path, assets: Path) -> bool:
    """Copy the viewer script (and its licence) into ``assets``; True when it is there."""
    target = assets / VIEWER_JS
    try:
        if not target.is_file() or target.stat().st_size != viewer_js.stat().st_size:
            from human3d.io.atomic import atomic_path

            with atomic_path(target) as tmp:
                shutil.copyfile(viewer_js, tmp)
        licence = viewer_js.parent.parent / "LICENSE"
        if licence.is_file() and not (assets / "model-viewer-LICENSE.txt").is_file():
            shutil.copyfile(licence, assets / "model-viewer-LICENSE.txt")
    except OSError as err:
        log.warning("could not copy the 3D viewer script %s (%s); the report will have no viewer", viewer_js, err)
        return False
    return True


@dataclass
class _Row:
    index: int
    name: str
    item: dict
    output: Path | None
    preview: Path | None
    thumb: Path | None
    model: Path | None
    model_bytes: int = 0


def _row(out_dir: Path, index: int, item: dict, models: bool) -> _Row:
    source = Path(str(item.get("input", "")))
    output = Path(item["output"]) if item.get("output") else None
    if output is not None and not output.is_absolute() and not output.exists():
        output = out_dir / output.name
    ok = item.get("status") in ("ok", "skipped") and output is not None and output.is_file()
    preview = _find_preview(out_dir, item, output) if ok else None
    thumb = None if preview else _thumbnail(source, out_dir / ASSETS_DIR / "thumbs" / f"{index}.jpg")
    row = _Row(index, source.name or f"input {index + 1}", item, output if ok else None, preview, thumb, None)
    if models and ok and output.suffix.lower() == ".glb":
        row.model = out_dir / ASSETS_DIR / "models" / f"{index}_{output.stem}.glb.js"
        row.model_bytes = _model_script(output, row.model, f"m{index}")
    return row


def _find_preview(out_dir: Path, item: dict, output: Path) -> Path | None:
    names = [Path(item["preview"])] if item.get("preview") else []
    names += [out_dir / PREVIEWS_DIR / f"{output.stem}_preview.png", output.with_name(f"{output.stem}_preview.png")]
    return next((p for p in names if p.is_file()), None)


def _thumbnail(source: Path, target: Path, size: int = 96) -> Path | None:
    """A small JPEG of the input photo (for rows without a preview), or None when it cannot be read."""
    import warnings

    from PIL import Image

    if target.is_file() and source.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
        return target
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a huge photo's DecompressionBombWarning: we only shrink it
            with Image.open(source) as im:
                im.draft("RGB", (size * 2, size * 2))
                im = im.convert("RGB")
                im.thumbnail((size, size))
                target.parent.mkdir(parents=True, exist_ok=True)
                im.save(target, "JPEG", quality=85)
    except Exception:  # unreadable inputs are exactly the failed rows: they get no thumbnail
        return None
    return target


def _model_script(glb: Path, target: Path, key: str) -> int:
    """Write ``target``: a script that stores ``glb`` as base64 under ``key`` (reused while newer than the GLB)."""
    if not (target.is_file() and target.stat().st_mtime >= glb.stat().st_mtime):
        data = base64.b64encode(glb.read_bytes()).decode("ascii")
        atomic_write_text(target, f'(window.H3D_MODELS=window.H3D_MODELS||{{}})["{key}"]="{data}";\n')
    return target.stat().st_size


def _url(path: Path, base: Path) -> str:
    return quote(Path(os.path.relpath(path.resolve(), base.resolve())).as_posix())


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


# -- the page -----------------------------------------------------------------------------------------------------

def _page(summary: dict, rows: list[_Row], viewer: bool, models: bool, out_dir: Path) -> str:
    head_js = f'<script src="{ASSETS_DIR}/{VIEWER_JS}"></script>' if viewer else ""
    if viewer:
        note = ""
    elif not models:
        note = "3D viewers are off for this report (written with --no-models); rerun human3d report without it."
    else:
        note = (f"The 3D viewer is not bundled: its script ({VIEWER_PACKAGE} from npm) was not found on the machine "
                "that wrote this report. Get it with <code>make install</code> (needs npm), or run <code>npm install "
                f"{VIEWER_PACKAGE}</code> inside the <code>.tools</code> folder of the human3d checkout, or point ${VIEWER_ENV} at "
                f"<code>{VIEWER_JS}</code>; then run <code>human3d report {_esc(out_dir)}</code> again. "
                "Previews and the table below work without it.")
    body = "\n".join([_summary_html(summary), _table_html(rows, out_dir, viewer)])
    banner = f'<p class="note" id="viewer-note">{note}</p>' if note else ""
    return (_TEMPLATE.replace("@@HEAD_JS@@", head_js).replace("@@BANNER@@", banner).replace("@@BODY@@", body)
            .replace("@@TITLE@@", _esc(f"human3d report: {out_dir.resolve().name}"))
            .replace("@@GENERATOR@@", GENERATOR))


def _summary_html(summary: dict) -> str:
    items = summary["items"]
    counts: dict[str, int] = {}
    for it in items:
        counts[it.get("status", "?")] = counts.get(it.get("status", "?"), 0) + 1
    parts = [f"<b>{len(items)}</b> inputs"] + [f'<span class="st-{_esc(k)}">{v} {_esc(k)}</span>'
                                                for k, v in sorted(counts.items())]
    wall = _wall_seconds(summary.get("started"), summary.get("finished"))
    total = sum(float(it.get("seconds") or 0) for it in items)
    lines = [f'<p class="counts">{" · ".join(parts)}</p>',
             f"<p>time: {total:.1f} s over all inputs"
             + (f", {wall:.0f} s from start to finish" if wall is not None else "")
             + f" · started {_esc(summary.get('started', '?'))} · human3d {_esc(summary.get('version', '?'))}"
             + (" · <b>interrupted</b>" if summary.get("interrupted") else "") + "</p>"]
    return "\n".join(lines + [_stage_table(items), _backend_table(items)])


def _wall_seconds(started: str | None, finished: str | None) -> float | None:
    try:
        return (datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds()
    except (TypeError, ValueError):
        return None


def _stage_table(items: list[dict]) -> str:
    totals: dict[str, list[float]] = {}
    for it in items:
        for stage, seconds in (it.get("timings") or {}).items():
            totals.setdefault(stage, []).append(float(seconds))
    if not totals:
        return ""
    grand = sum(sum(v) for v in totals.values()) or 1.0
    rows = "".join(f"<tr><td>{_esc(s)}</td><td>{sum(v):.2f}</td><td>{sum(v) / len(v):.2f}</td><td>{len(v)}</td>"
                   f"<td>{100 * sum(v) / grand:.0f}%</td></tr>" for s, v in totals.items())
    return ('<table class="small" id="stages"><caption>time per stage (seconds)</caption><tr><th>stage</th>'
            f"<th>total</th><th>mean</th><th>runs</th><th>share</th></tr>{rows}</table>")


def _backend_table(items: list[dict]) -> str:
    used: dict[str, dict[str, int]] = {}
    for it in items:
        for stage, name in (it.get("backends") or {}).items():
            used.setdefault(stage, {}).setdefault(str(name), 0)
            used[stage][str(name)] += 1
    if not used:
        return ""
    rows = "".join(f"<tr><td>{_esc(s)}</td><td>{_esc(', '.join(f'{n} ×{c}' for n, c in b.items()))}</td></tr>"
                   for s, b in used.items())
    return f'<table class="small" id="backends"><caption>backends</caption>{rows}</table>'


def _table_html(rows: list[_Row], out_dir: Path, viewer: bool) -> str:
    head = ("<tr><th></th><th>input</th><th>status</th><th>seconds</th><th>warnings</th><th>error</th>"
            "<th>result</th></tr>")
    return f'<table id="items">{head}' + "".join(_row_html(r, out_dir, viewer) for r in rows) + "</table>"


def _row_html(row: _Row, out_dir: Path, viewer: bool) -> str:
    it = row.item
    status = str(it.get("status", "?"))
    if row.preview:
        thumb = _preview_thumb(row.preview, out_dir)
    elif row.thumb:
        thumb = f'<img class="thumb" loading="lazy" alt="" src="{_url(row.thumb, out_dir)}">'
    else:
        thumb = '<span class="thumb none">no image</span>'
    warnings = "".join(f"<li>{_esc(w)}</li>" for w in it.get("warnings") or [])
    error = f'<span class="error">{_esc(it["error"])}</span>' if it.get("error") else ""
    return (f'<tr class="item st-{_esc(status)}" id="row{row.index}" data-input="{_esc(row.name)}" '
            f'data-status="{_esc(status)}"><td>{thumb}</td><td class="name" title="{_esc(it.get("input", ""))}">'
            f'{_esc(row.name)}</td><td class="status">{_esc(status)}</td>'
            f'<td class="num">{float(it.get("seconds") or 0):.1f}</td><td><ul class="warnings">{warnings}</ul></td>'
            f'<td class="err">{error}</td><td>{_result_html(row, out_dir, viewer)}</td></tr>')


def _preview_thumb(preview: Path, out_dir: Path, size: int = 72) -> str:
    """The preview's photo panel as a thumbnail: the whole preview, scaled and clipped to its first panel."""
    from PIL import Image

    from human3d.io.previews import PREVIEW_GAP_PX

    with Image.open(preview) as im:
        width, height = im.size  # reads the header only
    tile = (width - 3 * PREVIEW_GAP_PX) / 4
    k = size / tile
    return (f'<div class="thumb crop"><img loading="lazy" alt="" src="{_url(preview, out_dir)}" '
            f'style="width:{width * k:.1f}px;height:{height * k:.1f}px;margin-top:{-(height - tile) * k:.1f}px">'
            "</div>")


def _result_html(row: _Row, out_dir: Path, viewer: bool) -> str:
    if row.output is None:
        return ""
    link = f'<a href="{_url(row.output, out_dir)}">{_esc(row.output.name)}</a>'
    preview = (f'<img class="preview" loading="lazy" alt="preview of {_esc(row.name)}" '
               f'src="{_url(row.preview, out_dir)}">' if row.preview else "<p>no preview</p>")
    if row.model is not None and viewer:
        view = (f'<div class="viewer" data-key="m{row.index}" data-src="{_url(row.model, out_dir)}">'
                '<button type="button" class="view3d">open 3D viewer</button></div>')
    elif row.model is not None or row.output.suffix.lower() == ".glb":
        view = '<p class="hint">3D viewer not bundled (see the note at the top)</p>'
    else:
        view = '<p class="hint">the 3D viewer shows GLB results (reconstruct with --format glb)</p>'
    return f"{link}<details><summary>preview &amp; 3D</summary>{preview}{view}</details>"


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="@@GENERATOR@@">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@@TITLE@@</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse;margin:.6em 0}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;
vertical-align:top}table.small{display:inline-table;margin-right:2em;vertical-align:top}
caption{text-align:left;font-weight:600}.num{text-align:right}.thumb{width:72px;height:72px;display:block}
.thumb.crop{overflow:hidden}img.thumb{object-fit:contain}.thumb.none{color:#999;font-size:11px}
.st-failed .status,.error{color:#b00020}.st-ok .status{color:#11702a}.st-skipped .status{color:#7a5a00}
ul.warnings{margin:0;padding-left:1.1em;color:#7a5a00}.preview{max-width:100%;width:960px;display:block;margin:.4em 0}
.viewer model-viewer{width:480px;height:480px;background-color:#eef0f3;display:block}
.note{background:#fff4d6;border:1px solid #e0c060;padding:.6em;max-width:60em}.hint{color:#666}
</style>
@@HEAD_JS@@
</head><body>
<h1>@@TITLE@@</h1>
@@BANNER@@
@@BODY@@
<script>
(function () {
  "use strict";
  var current = null;  // the one open viewer: {box, viewer, url, script, key}
  function closeCurrent() {
    if (!current) return;
    current.viewer.remove();
    if (current.url) URL.revokeObjectURL(current.url);
    if (current.script) current.script.remove();
    if (window.H3D_MODELS) delete window.H3D_MODELS[current.key];
    current.box.dataset.state = "closed";
    current.button.hidden = false;
    current = null;
  }
  function say(box, text) {
    var p = box.querySelector(".hint") || box.appendChild(document.createElement("p"));
    p.className = "hint"; p.textContent = text;
  }
  function open(box) {
    closeCurrent();
    var button = box.querySelector("button");
    if (!window.customElements || !customElements.get("model-viewer")) {
      say(box, "the 3D viewer script did not load (report_files/@@VIEWER_JS@@ is missing); run human3d report again");
      return;
    }
    button.hidden = true;
    box.dataset.state = "loading";
    var key = box.dataset.key, viewer = document.createElement("model-viewer");
    viewer.setAttribute("camera-controls", "");
    viewer.setAttribute("autoplay", "");
    viewer.setAttribute("interaction-prompt", "none");
    viewer.setAttribute("camera-orbit", "0deg 90deg auto");
    viewer.setAttribute("loading", "eager");  // asked for: load now, even while scrolled out of sight
    viewer.setAttribute("alt", "3D view of the result");
    viewer.innerHTML = '<div slot="progress-bar"></div>';
    current = {box: box, viewer: viewer, url: null, script: null, key: key, button: button};
    var mine = current;
    viewer.addEventListener("load", function () {
      var anims = viewer.availableAnimations || [];
      if (anims.length) say(box, "animation: " + anims.join(", "));
      requestAnimationFrame(function () { requestAnimationFrame(function () { box.dataset.state = "loaded"; }); });
    });
    viewer.addEventListener("error", function () { box.dataset.state = "error"; say(box, "could not show this GLB"); });
    box.appendChild(viewer);
    viewer.scrollIntoView({block: "nearest"});
    var script = document.createElement("script");
    script.src = box.dataset.src;
    script.onload = function () {
      if (current !== mine) return;
      var text = atob(window.H3D_MODELS[key]), bytes = new Uint8Array(text.length);
      for (var i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
      mine.url = URL.createObjectURL(new Blob([bytes], {type: "model/gltf-binary"}));
      viewer.src = mine.url;
    };
    script.onerror = function () { box.dataset.state = "error"; say(box, "the model file " + box.dataset.src + " is missing"); };
    current.script = script;
    document.head.appendChild(script);
  }
  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("button.view3d");
    if (b) open(b.parentElement);
  });
})();
</script>
</body></html>
""".replace("@@VIEWER_JS@@", VIEWER_JS)
