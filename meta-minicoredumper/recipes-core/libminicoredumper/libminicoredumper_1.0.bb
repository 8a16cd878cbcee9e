# meta-minicoredumper/recipes-core/libminicoredumper/libminicoredumper_1.0.bb: builds the
# C library of this repository (runtime/libminicoredumper) with its own Makefile and
# splits it into the library, -dev (header, .so link, pkg-config file) and -examples.
SUMMARY = "Library for applications to register data for minicoredumper dumps"
DESCRIPTION = "libminicoredumper lets an application register memory and formatted \
               text that the minicoredumper crash handler writes into the core or into \
               separate dump files, and announces the process to the registry daemon."
SECTION = "libs"
LICENSE = "BSD-2-Clause"
# The project's own LICENSE, at the top of this repository (in SRC_URI below).
# nooelint: oelint.var.licenseremotefile - the sources, LICENSE among them, are this repository
LIC_FILES_CHKSUM = "file://${UNPACKDIR}/LICENSE;md5=4d533907d37abe8436351e906aa9a09a"

# Sources: this checkout, three directories above this recipe (see minicoredumper_1.0.bb).
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the sources are this repository
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI = "file://LICENSE \
           file://runtime/libminicoredumper/"
S = "${UNPACKDIR}/runtime/libminicoredumper"
# The Makefile builds out of tree with O=, so the unpacked sources stay clean.
B = "${WORKDIR}/build"

# CC, CFLAGS, CPPFLAGS and LDFLAGS come from the environment (the Makefile uses ?=).
EXTRA_OEMAKE = "-f ${S}/Makefile O=${B} \
                LIBDIR=${libdir} INCLUDEDIR=${includedir} BINDIR=${bindir}"

do_configure[noexec] = "1"

do_compile() {
    oe_runmake all
}

do_install() {
    oe_runmake install install-examples DESTDIR=${D} PREFIX=${prefix}
}

# The default FILES give ${PN} lib*.so.* and ${PN}-dev the header, the lib*.so link and
# ${libdir}/pkgconfig; only the example program needs a package of its own.
PACKAGE_BEFORE_PN = "${PN}-examples"
# mycrasher, the library's example program (registers data, then crashes).
FILES:${PN}-examples += "${bindir}/mycrasher"

BBCLASSEXTEND = "native"
