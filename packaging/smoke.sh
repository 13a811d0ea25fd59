#!/usr/bin/env bash
# Build the desktop bundle and check that it starts: `engines`, a classical `fill`, and the
# window opened offscreen for a few seconds. Slow (a full PyInstaller build): run it by hand
# before each release, not in CI. Needs the project and PyInstaller in the active environment.
#   bash packaging/smoke.sh            # build, then test
#   SKIP_BUILD=1 bash packaging/smoke.sh   # test the bundle already in dist/
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_BUILD:-0}" != "1" ]; then
  bash packaging/build.sh
fi
app="dist/inpaint-studio/inpaint-studio"
[ -x "$app" ] || { echo "smoke: no bundle at $app" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "== bundle size"
du -sh dist/inpaint-studio | cut -f1

echo "== inpaint-studio engines"
"$app" engines | tee "$work/engines.txt"
grep -q "classical" "$work/engines.txt" || { echo "smoke: classical engine not listed" >&2; exit 1; }

echo "== inpaint-studio fill (classical)"
sample="resources/samples/coffee.png"
python - "$sample" "$work/mask.png" <<'PY'
import sys
from PIL import Image, ImageDraw
w, h = Image.open(sys.argv[1]).size
mask = Image.new("L", (w, h), 0)
ImageDraw.Draw(mask).ellipse((w // 3, h // 3, w // 2, h // 2), fill=255)
mask.save(sys.argv[2])
PY
"$app" fill "$sample" --mask "$work/mask.png" -o "$work/filled.png" --engine classical -q
python - "$sample" "$work/filled.png" "$work/mask.png" <<'PY'
import sys
import numpy as np
from PIL import Image
src, out, mask = (np.asarray(Image.open(p).convert("RGB" if i < 2 else "L")) for i, p in enumerate(sys.argv[1:]))
assert out.shape == src.shape, (out.shape, src.shape)
keep = mask == 0
assert (out[keep] == src[keep]).all(), "pixels outside the mask changed"
assert (out[~keep] != src[~keep]).any(), "the hole was not filled"
print(f"filled {int((~keep).sum())} pixels, outside the mask unchanged")
PY

echo "== the window, offscreen, for 6 s"
set +e
QT_QPA_PLATFORM=offscreen HOME="$work" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" \
  timeout 6 "$app" --sample --no-recovery >"$work/app.log" 2>&1
rc=$?
set -e
cat "$work/app.log"
if [ "$rc" -ne 124 ]; then
  echo "smoke: the window exited early (exit code $rc)" >&2
  exit 1
fi
if grep -q "Traceback" "$work/app.log"; then
  echo "smoke: the window logged a traceback" >&2
  exit 1
fi
echo "smoke: OK"
