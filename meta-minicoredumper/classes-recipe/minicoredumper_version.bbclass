# meta-minicoredumper/classes-recipe/minicoredumper_version.bbclass: a recipe's PV read at
# parse time from the sources it builds, so that each version is written in one place:
#
#   PV = "${@minicoredumper_version(d, 'runtime/minicoredumper/__init__.py', '__version__')}"
#
# The file is found through FILESEXTRAPATHS, where the recipes' file:// sources come from
# (FILESPATH itself names ${BP}, which needs PV); the version is the value of its first
# line "NAME = value" or "NAME := value", quotes stripped. The file becomes a parse
# dependency: BitBake parses the recipe again when it changes.

def minicoredumper_version(d, path, name):
    import re
    found = bb.utils.which(d.getVar('FILESEXTRAPATHS'), path)
    if not found:
        bb.fatal("%s: no %s in FILESEXTRAPATHS to read the version from" % (d.getVar('PN'), path))
    found = os.path.realpath(found)  # the recipes' "../../..", resolved as the kernel does
    bb.parse.mark_dependency(d, found)
    with open(found) as f:
        m = re.search(r'^%s\s*:?=\s*"?([^"\s]+)"?\s*$' % re.escape(name), f.read(), re.M)
    if not m:
        bb.fatal("%s: %s has no line %s = VERSION" % (d.getVar('PN'), found, name))
    return m.group(1)

# nooelint: oelint.task.noanonpython - PV expanded once on the recipe's own datastore, so that the parse cache records the file
python __anonymous() {
    # Uncached (d.expand of the unexpanded value): expansions of PV on a copy of the
    # datastore would mark the dependency on the copy only.
    d.expand(d.getVar('PV', False) or '')
}
