SUMMARY = "Programs that crash on purpose, to test minicoredumper on a target"
DESCRIPTION = "crash3 (a crash three calls deep), threads8 (one of eight threads \
               crashes) and, through libminicoredumper-examples, mycrasher."
SECTION = "devel"
LICENSE = "BSD-2-Clause"
# nooelint: oelint.var.licenseremotefile - the sources, LICENSE among them, are this repository
LIC_FILES_CHKSUM = "file://${UNPACKDIR}/LICENSE;md5=4d533907d37abe8436351e906aa9a09a"

DEPENDS = "libminicoredumper"

# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the sources are this repository
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI = "file://LICENSE \
           file://tests/programs/"
S = "${UNPACKDIR}/tests/programs"
B = "${WORKDIR}/build"

do_configure[noexec] = "1"

# One program per tests/programs/*.c; those that include minicoredumper.h link the library.
do_compile() {
    for src in ${S}/*.c; do
        prog=$(basename $src .c)
        libs=
        if grep -q '<minicoredumper.h>' $src; then
            libs=-lminicoredumper
        fi
        ${CC} ${CPPFLAGS} ${CFLAGS} ${LDFLAGS} -pthread -o ${B}/$prog $src $libs
    done
}

do_install() {
    install -d ${D}${bindir}
    for src in ${S}/*.c; do
        install -m 0755 ${B}/$(basename $src .c) ${D}${bindir}/
    done
}

RDEPENDS:${PN} = "libminicoredumper-examples"
