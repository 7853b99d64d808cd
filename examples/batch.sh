#!/usr/bin/env bash
# A batch from the shell, as an asset pipeline runs one: a folder of photos in, one GLB per photo out, a
# summary.json with every outcome, and a rerun that only does what is left (a killed batch resumes).
#
#   examples/batch.sh PHOTOS_DIR OUT_DIR [extra reconstruct options...]
#
# Exit status: 0 when every photo succeeded (or was already done), 1 when some failed (their reasons are in
# OUT_DIR/summary.json), 2-5 as `human3d reconstruct` documents.
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 PHOTOS_DIR OUT_DIR [reconstruct options...]" >&2
  exit 2
fi
photos=$1 out=$2
shift 2
HUMAN3D=${HUMAN3D:-human3d}   # e.g. HUMAN3D=".venv/bin/human3d"
PYTHON=${PYTHON:-python3}

status=0
$HUMAN3D reconstruct "$photos" -o "$out" --preset fast --quiet "$@" || status=$?
if [ "$status" -gt 1 ]; then
  echo "batch stopped with exit $status" >&2
  exit "$status"
fi

# The summary is the record a pipeline reads: one entry per photo with its status, output and seconds.
"$PYTHON" - "$out/summary.json" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1]))
for item in summary["items"]:
    print(f'{item["status"]:8} {item["input"]} -> {item.get("output") or item.get("error")}')
PY

# Running the same command again recomputes nothing that is done: every finished photo is skipped.
rerun=0
$HUMAN3D reconstruct "$photos" -o "$out" --preset fast --quiet "$@" || rerun=$?
[ "$rerun" -le 1 ] || exit "$rerun"
exit "$status"
