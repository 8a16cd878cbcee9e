#!/bin/sh
# Installs what the demo and the tests need on a fresh Debian machine (as root):
# the Debian packages in scripts/apt-packages.txt, the PyPI packages in
# scripts/requirements.txt, and the runtime itself (pip install ./runtime).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
pkgs=$(grep -v '^#' "$here/apt-packages.txt" | tr '\n' ' ')
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -r "$here/requirements.txt" 2>&1 | grep -v -i warning || true
python3 -m pip install -q --disable-pip-version-check "$root/runtime" 2>&1 | grep -v -i warning || true
