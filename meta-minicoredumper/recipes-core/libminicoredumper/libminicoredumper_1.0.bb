SUMMARY = "Library for applications to register data for minicoredumper dumps"
DESCRIPTION = "libminicoredumper lets an application register memory and formatted \
               text that the minicoredumper crash handler writes into the core or into \
               separate dump files, and announces the process to the registry daemon."
SECTION = "libs"
LICENSE = "BSD-2-Clause"
# nooelint: oelint.var.licenseremotefile - the sources, LICENSE among them, are this repository
LIC_FILES_CHKSUM = "file://${UNPACKDIR}/LICENSE;md5=4d533907d37abe8436351e906aa9a09a"

# The library's ABI version, VERSION of its Makefile (libminicoredumper.so.VERSION), not the
# runtime's version nor the 1.0 of the file name.
inherit minicoredumper_version
PV = "${@minicoredumper_version(d, 'runtime/libminicoredumper/Makefile', 'VERSION')}"

# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the sources are this repository
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI = "file://LICENSE \
           file://runtime/libminicoredumper/"
S = "${UNPACKDIR}/runtime/libminicoredumper"
B = "${WORKDIR}/build"

# Out of tree (O=); CC, CFLAGS, CPPFLAGS and LDFLAGS come from the environment.
EXTRA_OEMAKE = "-f ${S}/Makefile O=${B} \
                LIBDIR=${libdir} INCLUDEDIR=${includedir} BINDIR=${bindir}"

do_configure[noexec] = "1"

do_compile() {
    oe_runmake all
}

do_install() {
    oe_runmake install install-examples DESTDIR=${D} PREFIX=${prefix}
}

PACKAGE_BEFORE_PN = "${PN}-examples"
FILES:${PN}-examples += "${bindir}/mycrasher"

BBCLASSEXTEND = "native"
