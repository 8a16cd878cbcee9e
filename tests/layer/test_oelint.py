"""tests/layer/test_oelint.py: oelint-adv over every recipe and config file of the layer,
with the committed settings in tests/layer/oelint.cfg (release wrynose, mode all), and
the rule that every suppression says why.
"""

import os
import re
import subprocess
import sys

from layertest import HERE, LAYER, need_distribution, read

CONFIG = os.path.join(HERE, "oelint.cfg")


def layer_files():
    found = []
    for root, _, files in os.walk(LAYER):
        found += [os.path.join(root, f) for f in files
                  if f.endswith((".bb", ".bbappend", ".bbclass", ".inc", ".conf"))
                  and "/files/" not in os.path.join(root, f) + "/"]
    return sorted(found)


def test_oelint_finds_nothing():
    need_distribution("oelint-adv")
    files = layer_files()
    assert any(f.endswith(".bb") for f in files)
    env = dict(os.environ, OELINT_CONFIG=CONFIG)
    env.pop("OELINT_SKIP_CONFIG", None)
    proc = subprocess.run([sys.executable, "-m", "oelint_adv", "--quiet", "--jobs", "1", *files],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=600)
    findings = [line for line in proc.stdout.splitlines()
                if re.search(r":(error|warning|info):", line)]
    assert findings == [], "\n".join(findings)
    assert proc.returncode == 0, proc.stdout


def test_every_suppression_says_why():
    # In oelint.cfg: each suppressed rule sits under a comment.
    lines = read(CONFIG).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("suppress"))
    commented = False
    for line in lines[start + 1:]:
        if not line.startswith((" ", "\t")):
            break
        text = line.strip()
        if text.startswith("#"):
            commented = True
        elif text:
            assert commented, "suppression without a reason: %s" % text
    # In recipes: "# nooelint: <ids> - <reason>".
    for path in layer_files():
        for line in read(path).splitlines():
            if "nooelint" in line:
                assert re.match(r"#\s+nooelint:\s+\S+\s+-\s+\w", line.strip()), (path, line)
