"""tests/layer/test_provider_choice.py: which minicoredumper recipe a build gets.

meta-oe carries a recipe named minicoredumper too (the original, C, 2.0.x). The layer's
README promises that adding the layer changes nothing by itself: in a build with both
layers, `minicoredumper` stays meta-oe's unless local.conf says otherwise, with the one
line the README gives; a build without meta-oe gets this layer's.

The harness (bbharness.py) parses the layers with BitBake's parser, stubcore standing in
for oe-core and tests/layer/stubmetaoe for meta-oe (priority 5, a minicoredumper_2.0.7.bb
like meta-oe's), and reports the recipe file BitBake's own provider code picks for each
name (bb.providers.findProviders with bb.cooker's layer priorities).
"""

import os
import re

import pytest

from layertest import HERE, LAYER, RECIPES, harness, read

STUBMETAOE = os.path.join(HERE, "stubmetaoe")
OURS = os.path.join(LAYER, RECIPES["runtime"])
THEIRS = os.path.join(STUBMETAOE, "recipes-kernel", "minicoredumper", "minicoredumper_2.0.7.bb")


def switch():
    """The local.conf line of the layer's README that chooses this layer's minicoredumper."""
    lines = re.findall(r"^\s*(PREFERRED_VERSION_minicoredumper\s*=\s*\"[^\"]+\")\s*$",
                       read(os.path.join(LAYER, "README.md")), re.M)
    assert len(lines) == 1, "the layer's README gives one PREFERRED_VERSION_minicoredumper line"
    return lines[0]


def chosen(tmp_path, *args):
    code, output, report = harness(tmp_path, *args)
    assert code == 0, output
    assert "not available" not in output, output  # a PREFERRED_VERSION that matched nothing
    return report["providers"]


def test_without_meta_oe_the_layer_gives_minicoredumper(tmp_path):
    providers = chosen(tmp_path)
    assert providers["minicoredumper"]["preferred"] == OURS


def test_with_meta_oe_adding_the_layer_changes_nothing(tmp_path):
    providers = chosen(tmp_path, "--extra-layer", STUBMETAOE)
    assert set(providers["minicoredumper"]["candidates"]) == {OURS, THEIRS}
    assert providers["minicoredumper"]["preferred"] == THEIRS, providers["minicoredumper"]
    assert providers["minicoredumper"]["version"] == "2.0.7"
    # The layer's other recipes have no namesake in meta-oe and stay the layer's.
    for key in ("library", "crashtests", "image"):
        fn = os.path.join(LAYER, RECIPES[key])
        assert any(p["preferred"] == fn for p in providers.values()), key


def test_the_readme_switch_chooses_the_layer_next_to_meta_oe(tmp_path):
    providers = chosen(tmp_path, "--extra-layer", STUBMETAOE, "--conf", switch())
    assert providers["minicoredumper"]["preferred"] == OURS, providers["minicoredumper"]


@pytest.mark.parametrize("line", ['PREFERRED_VERSION_minicoredumper = "2.0.7"'])
def test_meta_oe_named_explicitly(tmp_path, line):
    providers = chosen(tmp_path, "--extra-layer", STUBMETAOE, "--conf", line)
    assert providers["minicoredumper"]["preferred"] == THEIRS


def test_the_switch_is_harmless_without_meta_oe(tmp_path):
    providers = chosen(tmp_path, "--conf", switch())
    assert providers["minicoredumper"]["preferred"] == OURS
