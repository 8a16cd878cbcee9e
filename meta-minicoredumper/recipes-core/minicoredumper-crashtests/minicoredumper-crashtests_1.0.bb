SUMMARY = "Programs that crash on purpose, for the package test of minicoredumper"
DESCRIPTION = "crash3 (a crash three calls deep), threads8 (one of eight threads \
               crashes), mycrasher (libminicoredumper's example: registers data, \
               then crashes) and the other programs of tests/programs, off PATH in \
               the ptest directory of minicoredumper, whose run-ptest crashes them."
SECTION = "devel"
LICENSE = "BSD-2-Clause"
# nooelint: oelint.var.licenseremotefile - the sources, LICENSE among them, are this repository
LIC_FILES_CHKSUM = "file://${UNPACKDIR}/LICENSE;md5=4d533907d37abe8436351e906aa9a09a"

DEPENDS = "libminicoredumper"

# The runtime's version: these programs are its package test.
inherit minicoredumper_version
PV = "${@minicoredumper_version(d, 'runtime/minicoredumper/__init__.py', '__version__')}"

# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the sources are this repository
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI = "file://LICENSE \
           file://tests/programs/ \
           file://runtime/libminicoredumper/mycrasher.c"
S = "${UNPACKDIR}/tests/programs"
B = "${WORKDIR}/build"

# ${PTEST_PATH}/bin of minicoredumper: programs with generic names that crash do not
# belong on PATH.
CRASHTESTS_DIR = "${libdir}/minicoredumper/ptest/bin"
CRASHTESTS_SOURCES = "${S}/*.c ${UNPACKDIR}/runtime/libminicoredumper/mycrasher.c"

do_configure[noexec] = "1"

# One program per source; those that include minicoredumper.h link the library.
do_compile() {
    for src in ${CRASHTESTS_SOURCES}; do
        prog=$(basename $src .c)
        libs=
        if grep -q '<minicoredumper.h>' $src; then
            libs=-lminicoredumper
        fi
        ${CC} ${CPPFLAGS} ${CFLAGS} ${LDFLAGS} -pthread -o ${B}/$prog $src $libs
    done
}

do_install() {
    install -d ${D}${CRASHTESTS_DIR}
    for src in ${CRASHTESTS_SOURCES}; do
        install -m 0755 ${B}/$(basename $src .c) ${D}${CRASHTESTS_DIR}/
    done
}

FILES:${PN} += "${CRASHTESTS_DIR}"

# The dump's summary names the crashing thread's functions from the program's .symtab,
# and run-ptest checks those names: no stripping, no debug split.
INHIBIT_PACKAGE_STRIP = "1"
INHIBIT_PACKAGE_DEBUG_SPLIT = "1"
