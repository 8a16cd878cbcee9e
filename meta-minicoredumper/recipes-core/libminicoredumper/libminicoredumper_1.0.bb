# meta-minicoredumper/recipes-core/libminicoredumper/libminicoredumper_1.0.bb: builds the
# C library of this repository (runtime/libminicoredumper) with its own Makefile and
# splits it into the library, -dev (header, .so link, pkg-config file) and -examples.
SUMMARY = "Library for applications to register data for minicoredumper dumps"
DESCRIPTION = "libminicoredumper lets an application register memory and formatted \
               text that the minicoredumper crash handler writes into the core or into \
               separate dump files, and announces the process to the registry daemon."
SECTION = "libs"
# The repository declares BSD-2-Clause (runtime/pyproject.toml) and has no licence file
# of its own yet, so the checksum is taken from the common licence text.
LICENSE = "BSD-2-Clause"
# nooelint: oelint.var.licenseremotefile - no licence file in the repository yet
LIC_FILES_CHKSUM = "file://${COMMON_LICENSE_DIR}/BSD-2-Clause;md5=cb641bc04cda31daea161b1bc15da69f"

# Sources: this checkout, three directories above this recipe (see minicoredumper_1.0.bb).
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the sources are this repository
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI = "file://runtime/libminicoredumper/"
S = "${UNPACKDIR}/runtime/libminicoredumper"
# The Makefile builds out of tree with O=, so the unpacked sources stay clean.
B = "${WORKDIR}/build"

# CC, CFLAGS, CPPFLAGS and LDFLAGS come from the environment (the Makefile uses ?=).
# WARNFLAGS drops the Makefile's -Werror: warnings of another compiler version must not
# fail a distribution build; the project's own CI keeps -Werror.
EXTRA_OEMAKE = "-f ${S}/Makefile O=${B} \
                LIBDIR=${libdir} INCLUDEDIR=${includedir} BINDIR=${bindir} \
                'WARNFLAGS=-Wall -Wextra'"

do_configure[noexec] = "1"

do_compile() {
    oe_runmake all
}

do_install() {
    oe_runmake install DESTDIR=${D} PREFIX=${prefix}
}

# The default FILES give ${PN} lib*.so.* and ${PN}-dev the header, the lib*.so link and
# ${libdir}/pkgconfig; only the example program needs a package of its own.
PACKAGE_BEFORE_PN = "${PN}-examples"
# mycrasher, the library's example program (registers data, then crashes).
FILES:${PN}-examples += "${bindir}/mycrasher"

BBCLASSEXTEND = "native"
