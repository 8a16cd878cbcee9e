# tests/layer/stubmetaoe/recipes-kernel/minicoredumper/minicoredumper_2.0.7.bb: the
# stand-in for meta-oe's recipe of the original minicoredumper (C, autotools): the same
# name, version, sources and service variables. Only parsed, never built: the stub core
# has no autotools, pkgconfig or ptest class, so it inherits the two it has.
SUMMARY = "minicoredumper provides an alternate core dump facility for Linux \
to allow minimal and customized crash dumps"
LICENSE = "LGPL-2.1-only & BSD-2-Clause"
LIC_FILES_CHKSUM = "file://COPYING;md5=71827c617ec7b45a0dd23658347cc1e9"
DEPENDS = "elfutils dbus glib-2.0 util-linux json-c"

inherit systemd update-rc.d

SRCREV = "ca6e7ad62b4cf984de84aa081024c4e45632cecb"
SRC_URI = "git://github.com/diamon/minicoredumper;protocol=https;branch=master \
           file://minicoredumper.service \
           file://minicoredumper.init"
S = "${WORKDIR}/git"

SYSTEMD_SERVICE:${PN} = "minicoredumper.service"
SYSTEMD_AUTO_ENABLE = "enable"

INITSCRIPT_PACKAGES = "${PN}"
INITSCRIPT_NAME:${PN} = "minicoredumper"
INITSCRIPT_PARAMS:${PN} = "defaults 89"
