#!/bin/sh
# Installs what `make demo` or `make test` needs on a fresh Debian machine (as root).
#   sh scripts/install-deps.sh demo   Debian packages of scripts/apt-demo.txt
#   sh scripts/install-deps.sh test   those and scripts/apt-packages.txt, and the PyPI
#                                     packages of scripts/requirements.txt
# Both put the runtime (pip install ./runtime) into a virtual environment, VENV
# (default: .venv in the checkout), made with PYTHON (default python3): Debian's own
# python3 refuses pip installs into the system (PEP 668).
set -eu
what=${1:-test}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
venv=${VENV:-$root/.venv}
python=${PYTHON:-python3}
case $what in
    demo) lists="$here/apt-demo.txt" ;;
    test) lists="$here/apt-demo.txt $here/apt-packages.txt" ;;
    *) echo "usage: $0 demo|test" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086  # $lists and $missing are lists of words
pkgs=$(sed 's/#.*//' $lists | tr '\n' ' ')
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing Debian packages:$missing"
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! "$venv/bin/python" -c pass 2>/dev/null; then
    "$python" -m venv "$venv"
fi
pip="$venv/bin/python -m pip install -q --disable-pip-version-check"
if [ "$what" = test ]; then $pip -r "$here/requirements.txt"; fi
$pip "$root/runtime"
echo "runtime installed in the virtual environment $venv (commands in $venv/bin: mcd, minicoredumper, ...)"
