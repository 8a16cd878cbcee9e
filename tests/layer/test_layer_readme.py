"""tests/layer/test_layer_readme.py: the layer's README says what yocto-check-layer and
users look for in a layer's front page.

yocto-check-layer's test_readme (openembedded-core, scripts/lib/checklayer/cases/
common.py) takes the layer's README* with the shortest name, wants it non-empty and, unless
it mentions "README" (then it is taken for a pointer to another file and the rest is
skipped), containing "maintainer", "patch" and an e-mail address. A README that mentions
README passes without saying any of that; this one must pass the checks themselves.
Beyond them, what a user of a layer looks for: who maintains it and how to reach them,
how to send changes, what it depends on (the collections of LAYERDEPENDS) and which
release series its branches support (LAYERSERIES_COMPAT).
"""

import glob
import os
import re

from layertest import LAYER, read


def layer_conf(name):
    m = re.search(r'^%s_minicoredumper\s*=\s*"([^"]*)"' % name,
                  read(os.path.join(LAYER, "conf", "layer.conf")), re.M)
    assert m, name
    return m.group(1).split()


def readme():
    files = glob.glob(os.path.join(LAYER, "[Rr][Ee][Aa][Dd][Mm][Ee]*"))
    assert files, "the layer has no README"
    path = sorted(files)[0]  # as yocto-check-layer chooses
    assert os.path.basename(path) == "README.md"
    return read(path)


def sections(text):
    """{heading text (lower case): body} of the markdown's ## sections."""
    found, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^##\s+(.*?)\s*$", line)
        if m:
            current = m.group(1).lower()
            found[current] = ""
        elif current is not None:
            found[current] += line + "\n"
    return found


def section(text, *words):
    """The body of the one ## section whose heading has one of the words."""
    hits = [body for head, body in sections(text).items() if any(w in head for w in words)]
    assert len(hits) == 1, "one ## section about %s" % "/".join(words)
    return hits[0]


def test_yocto_check_layer_readme_checks_run_and_pass():
    data = readme()
    assert data
    assert not re.search("README", data, re.IGNORECASE), (
        "yocto-check-layer skips its checks for a README that mentions README")
    assert "maintainer" in data.lower()
    assert "patch" in data.lower()
    assert re.compile(r"[^@]+@[^@]+").match(data)


def test_maintainers():
    body = section(readme(), "maintainer")
    assert re.search(r"<[^<>@\s]+@[^<>@\s]+\.[a-z]+>", body), "a maintainer with an address"


def test_sending_patches():
    body = section(readme(), "patch", "contribut")
    assert "pull request" in body.lower() and "issue" in body.lower()
    assert "maintainer" in body.lower() or "@" in body


def test_dependencies_are_layer_confs():
    body = section(readme(), "dependencies", "depends")
    names = {"core": "openembedded-core"}
    for collection in layer_conf("LAYERDEPENDS"):
        assert names.get(collection, collection) in body, collection
        assert "`%s`" % collection in body, collection
    assert "meta-openembedded" in body or "meta-oe" in body, "says what it does not need"


def test_branches_are_layerseries_compat():
    body = section(readme(), "branch")
    for series in layer_conf("LAYERSERIES_COMPAT"):
        assert series in body, series
