"""tests/layer/test_layer_copy.py: the layer works only inside this repository's checkout.

Its recipes build the files next to the layer (LICENSE, runtime/, conf/, tests/programs/:
FILESEXTRAPATHS three directories up). A copy of meta-minicoredumper on its own must stop
BitBake at parse time with a message that says so and what to do, not parse and then
fail at fetch or with "Unable to get checksum". The harness parses a copy made outside
the checkout; a symbolic link to the checkout's layer from elsewhere still works (the
sources are found through the link's real path).
"""

import os
import shutil

from layertest import LAYER, REPO, harness, read


def test_a_copy_outside_the_checkout_stops_the_parse(tmp_path):
    copy = tmp_path / "layers" / "meta-minicoredumper"
    shutil.copytree(LAYER, copy)
    assert not str(copy).startswith(REPO + os.sep)
    code, output, report = harness(tmp_path / "out", "--layer", str(copy))
    assert code == 1 and "configuration_error" in report, output
    assert "checksum" not in output.lower(), output
    first = output.strip().splitlines()[0]
    assert first.startswith("meta-minicoredumper (%s)" % copy), output
    for words in ("only inside a checkout", "runtime/minicoredumper", "BBLAYERS",
                  "not a copy"):
        assert words in first, (words, output)


def test_a_link_to_the_checkouts_layer_parses(tmp_path):
    link = tmp_path / "layers" / "meta-minicoredumper"
    link.parent.mkdir()
    link.symlink_to(LAYER)
    code, output, report = harness(tmp_path / "out", "--layer", str(link))
    assert code == 0, output
    assert report["providers"]["minicoredumper"]["preferred"].startswith(str(link) + os.sep)


def test_the_readme_says_so():
    text = read(os.path.join(REPO, "README.md"))
    section = text.split("\n## Adding the layer to a Yocto build\n", 1)[1].split("\n## ", 1)[0]
    words = " ".join(section.split())
    assert "only inside this repository's checkout" in words and "not a copy" in words
