# tests/layer/stubcore/classes/ptest.bbclass: package tests (DISTRO_FEATURES "ptest"), with
# oe-core's names and defaults: ${PN}-ptest first in PACKAGES (so it claims ${PTEST_PATH}
# before ${PN}'s ${libdir}/${BPN}/*), its FILES, RDEPENDS and RRECOMMENDS, and the three
# *_ptest_base tasks, which install ${UNPACKDIR}/run-ptest and call the recipe's
# do_*_ptest. Smoke-test stand-in: no fakeroot and no chown, no ptest-packagelists.inc,
# no Makefile path stripping, no update-alternatives links.
SUMMARY:${PN}-ptest ?= "${SUMMARY} - Package test files"
DESCRIPTION:${PN}-ptest ?= "${DESCRIPTION}  \
This package contains a test directory ${PTEST_PATH} for package test purposes."

PTEST_PATH ?= "${libdir}/${BPN}/ptest"

FILES:${PN}-ptest += "${PTEST_PATH}"
SECTION:${PN}-ptest = "devel"
ALLOW_EMPTY:${PN}-ptest = "1"
PTEST_ENABLED = "${@bb.utils.contains('DISTRO_FEATURES', 'ptest', '1', '0', d)}"
PTEST_ENABLED:class-native = ""
RDEPENDS:${PN}-ptest += "${PN}"
RDEPENDS:${PN}-ptest:class-native = ""
RRECOMMENDS:${PN}-ptest += "ptest-runner"

PACKAGES =+ "${@bb.utils.contains('PTEST_ENABLED', '1', '${PN}-ptest', '', d)}"

do_configure_ptest() {
	:
}

do_configure_ptest_base() {
	do_configure_ptest
}

do_compile_ptest() {
	:
}

do_compile_ptest_base() {
	do_compile_ptest
}

do_install_ptest() {
	:
}

do_install_ptest_base() {
	if [ -f ${UNPACKDIR}/run-ptest ]; then
		install -D ${UNPACKDIR}/run-ptest ${D}${PTEST_PATH}/run-ptest
	fi
	grep -q install-ptest: Makefile 2>/dev/null && oe_runmake DESTDIR=${D}${PTEST_PATH} install-ptest
	do_install_ptest
}

do_configure_ptest_base[dirs] = "${B}"
do_compile_ptest_base[dirs] = "${B}"
do_install_ptest_base[dirs] = "${B}"
do_install_ptest_base[cleandirs] = "${D}${PTEST_PATH}"

addtask configure_ptest_base after do_configure before do_compile
addtask compile_ptest_base after do_compile before do_install
addtask install_ptest_base after do_install before do_build

python () {
    # Without the ptest distro feature the *_ptest_base tasks do not exist.
    if d.getVar('PTEST_ENABLED') != "1":
        for i in ['do_configure_ptest_base', 'do_compile_ptest_base', 'do_install_ptest_base']:
            bb.build.deltask(i, d)
}
