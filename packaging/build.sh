#!/usr/bin/env bash
# Build a one-folder desktop bundle in dist/inpaint-studio/ (Linux, macOS or Windows/Git-Bash).
# Needs the project installed in the active environment plus PyInstaller:
#   pip install -e . pyinstaller && bash packaging/build.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python -m PyInstaller --log-level WARN --noconfirm --clean packaging/inpaint-studio.spec
echo "built: dist/inpaint-studio/"
if [ "$(uname -s)" = "Linux" ]; then
  echo "desktop integration: copy packaging/io.github.inpaint_studio.desktop to ~/.local/share/applications/"
fi
