# tests/layer/stubcore/classes/update-rc.d.bbclass: the variables a recipe gives sysvinit
# script registration. Smoke-test stand-in: refuses a recipe that names no script, as a
# real build does, and registers nothing.
INIT_D_DIR = "${sysconfdir}/init.d"
INITSCRIPT_PARAMS ?= "defaults"

python __anonymous() {
    if d.getVar('INITSCRIPT_PACKAGES', False) is None and d.getVar('INITSCRIPT_NAME', False) is None:
        bb.fatal("%s inherits update-rc.d but names no INITSCRIPT_NAME" % d.getVar('FILE', False))
}
