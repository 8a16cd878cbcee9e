SUMMARY = "Small, configurable ELF core dumps for embedded Linux (Python minicoredumper)"
DESCRIPTION = "A core_pattern pipe handler that writes minimal, application-specific \
               core dumps described by JSON recepts, plus the registry daemon for live \
               dumps of registered applications and offline tools (mcd, coreinject)."
SECTION = "devel"
LICENSE = "BSD-2-Clause"
# nooelint: oelint.var.licenseremotefile - the sources, LICENSE among them, are this repository
LIC_FILES_CHKSUM = "file://${UNPACKDIR}/LICENSE;md5=4d533907d37abe8436351e906aa9a09a"

# The runtime's one version, __version__ of runtime/minicoredumper/__init__.py (not the 1.0
# of the file name).
inherit minicoredumper_version
PV = "${@minicoredumper_version(d, 'runtime/minicoredumper/__init__.py', '__version__')}"

# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the sources are this repository
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI = "file://LICENSE \
           file://runtime/ \
           file://conf/ \
           file://60-minicoredumper.conf.in \
           file://minicoredumper.init \
           file://minicoredumper-regd.init \
           file://minicoredumper-regd.service \
           file://minicoredumper-store-import.init \
           file://minicoredumper-store-import.service"
S = "${UNPACKDIR}"

# A plain install, not a wheel: see "How the recipes work" in the layer's README.md.
inherit python3-dir python3native systemd update-rc.d bash-completion ptest

do_configure[noexec] = "1"
do_compile[noexec] = "1"

# The console scripts of runtime/pyproject.toml that go to sbindir; the others go to bindir.
MINICOREDUMPER_SBIN_SCRIPTS = "minicoredumper minicoredumper_regd minicoredumper_trigger \
                               minicoredumper_sockd"
MINICOREDUMPER_TARGET_RECEPT ?= "embedded.recept.json"
MINICOREDUMPER_CORE_PIPE_LIMIT ?= "2147483647"
MINICOREDUMPER_SYSCTLDIR = "${nonarch_libdir}/sysctl.d"
MINICOREDUMPER_PKGDIR = "${PYTHON_SITEPACKAGES_DIR}/minicoredumper"
# The raw store (README "Dumps without a file system"): a device set here goes into the
# main config's "store" (slot size 0: the MTD erase block, else 4096; slots 0: as many as
# the device holds); MINICOREDUMPER_STORE_IMPORT = "1" runs `mcd store import` at boot.
MINICOREDUMPER_STORE_DEVICE ?= ""
MINICOREDUMPER_STORE_SLOT_SIZE ?= "0"
MINICOREDUMPER_STORE_SLOTS ?= "0"
# nooelint: oelint.vars.mispell.unknown - our own variable (not a misspelt oe-core one)
MINICOREDUMPER_STORE_IMPORT ?= "0"

do_install() {
    install -d ${D}${MINICOREDUMPER_PKGDIR}
    install -m 0644 ${S}/runtime/minicoredumper/*.py ${D}${MINICOREDUMPER_PKGDIR}/
    ${PYTHON} -m compileall -q --invalidation-mode checked-hash \
        -d ${MINICOREDUMPER_PKGDIR} ${D}${MINICOREDUMPER_PKGDIR}

    install -d ${D}${sbindir} ${D}${bindir}
    sed -n '/^\[project\.scripts\]/,/^\[/s/^\([a-z_]*\) = "\([a-z_.]*\):main"$/\1 \2/p' \
        ${S}/runtime/pyproject.toml > ${T}/console-scripts
    while read -r name module; do
        case " ${MINICOREDUMPER_SBIN_SCRIPTS} " in
        *" $name "*) dest=${D}${sbindir}/$name ;;
        *) dest=${D}${bindir}/$name ;;
        esac
        sed -e 's|@PYTHON@|${bindir}/python3|' -e 's|@SITEDIR@|${PYTHON_SITEPACKAGES_DIR}|' \
            -e "s|@MODULE@|$module|" ${S}/runtime/minicoredumper/launcher.in > $dest
        chmod 0755 $dest
    done < ${T}/console-scripts

    # The man pages (to ${PN}-doc) and mcd's bash completion (to ${PN}-bash-completion).
    for page in ${S}/runtime/man/*.[158]; do
        install -D -m 0644 $page ${D}${mandir}/man${page##*.}/${page##*/}
    done
    install -D -m 0644 ${S}/runtime/completion/mcd ${D}${datadir}/bash-completion/completions/mcd

    install -d ${D}${sysconfdir}/minicoredumper
    install -m 0644 ${S}/conf/*.json ${D}${sysconfdir}/minicoredumper/
    sed -i -e 's|generic\.recept\.json|${MINICOREDUMPER_TARGET_RECEPT}|g' \
        ${D}${sysconfdir}/minicoredumper/minicoredumper.cfg.json
    if [ -n "${MINICOREDUMPER_STORE_DEVICE}" ]; then
        ${PYTHON} -c 'import json, sys
path, device, size, slots = sys.argv[1:]
with open(path) as f:
    cfg = json.load(f)
cfg["store"] = {"device": device, "slot_size": int(size), "slots": int(slots)}
with open(path, "w") as f:
    json.dump(cfg, f, indent=4)
    f.write("\n")' ${D}${sysconfdir}/minicoredumper/minicoredumper.cfg.json \
            "${MINICOREDUMPER_STORE_DEVICE}" "${MINICOREDUMPER_STORE_SLOT_SIZE}" \
            "${MINICOREDUMPER_STORE_SLOTS}"
    fi

    install -D -m 0644 ${UNPACKDIR}/60-minicoredumper.conf.in \
        ${D}${MINICOREDUMPER_SYSCTLDIR}/60-minicoredumper.conf
    install -D -m 0755 ${UNPACKDIR}/minicoredumper.init ${D}${INIT_D_DIR}/minicoredumper
    install -D -m 0755 ${UNPACKDIR}/minicoredumper-regd.init ${D}${INIT_D_DIR}/minicoredumper-regd
    install -D -m 0644 ${UNPACKDIR}/minicoredumper-regd.service \
        ${D}${systemd_system_unitdir}/minicoredumper-regd.service
    install -D -m 0755 ${UNPACKDIR}/minicoredumper-store-import.init \
        ${D}${INIT_D_DIR}/minicoredumper-store-import
    install -D -m 0644 ${UNPACKDIR}/minicoredumper-store-import.service \
        ${D}${systemd_system_unitdir}/minicoredumper-store-import.service
    sed -i -e 's|@SBINDIR@|${sbindir}|g' -e 's|@SYSCONFDIR@|${sysconfdir}|g' \
        -e 's|@SYSCTLDIR@|${MINICOREDUMPER_SYSCTLDIR}|g' -e 's|@RUNDIR@|${runtimedir}|g' \
        -e 's|@CORE_PIPE_LIMIT@|${MINICOREDUMPER_CORE_PIPE_LIMIT}|g' -e 's|@BINDIR@|${bindir}|g' \
        ${D}${MINICOREDUMPER_SYSCTLDIR}/60-minicoredumper.conf \
        ${D}${INIT_D_DIR}/minicoredumper ${D}${INIT_D_DIR}/minicoredumper-regd \
        ${D}${INIT_D_DIR}/minicoredumper-store-import \
        ${D}${systemd_system_unitdir}/minicoredumper-regd.service \
        ${D}${systemd_system_unitdir}/minicoredumper-store-import.service
}

PACKAGE_BEFORE_PN = "${PN}-daemon ${PN}-tools"

FILES:${PN} += "${MINICOREDUMPER_PKGDIR} \
                ${MINICOREDUMPER_SYSCTLDIR}/60-minicoredumper.conf"
FILES:${PN}-daemon += "${sbindir}/minicoredumper_regd \
                       ${sbindir}/minicoredumper_trigger \
                       ${sbindir}/minicoredumper_sockd \
                       ${INIT_D_DIR}/minicoredumper-regd \
                       ${systemd_system_unitdir}/minicoredumper-regd.service"
FILES:${PN}-tools += "${bindir} \
                      ${INIT_D_DIR}/minicoredumper-store-import \
                      ${systemd_system_unitdir}/minicoredumper-store-import.service"

CONFFILES:${PN} = "${sysconfdir}/minicoredumper/minicoredumper.cfg.json \
                   ${sysconfdir}/minicoredumper/generic.recept.json \
                   ${sysconfdir}/minicoredumper/embedded.recept.json"

# What the programs import, optional imports included (python3-syslog: log.py's syslog;
# python3-io where journald runs: its structured entry goes through _socket);
# tests/layer/test_crashpath_imports.py derives these lists.
RDEPENDS:${PN} = "python3-compression python3-core \
                  ${@bb.utils.contains('DISTRO_FEATURES', 'systemd', 'python3-io', '', d)} \
                  python3-json python3-syslog"
RDEPENDS:${PN}-daemon = "${PN} python3-core python3-ctypes python3-io"
RDEPENDS:${PN}-tools = "${PN} python3-core"

SYSTEMD_PACKAGES = "${PN}-daemon ${PN}-tools"
SYSTEMD_SERVICE:${PN}-daemon = "minicoredumper-regd.service"
SYSTEMD_SERVICE:${PN}-tools = "minicoredumper-store-import.service"
SYSTEMD_AUTO_ENABLE:${PN}-tools = "${@'enable' if d.getVar('MINICOREDUMPER_STORE_IMPORT') == '1' else 'disable'}"

# The import's init script is always installed, linked into rcS.d only when enabled.
INITSCRIPT_PACKAGES = "${PN} ${PN}-daemon \
                       ${@'${PN}-tools' if d.getVar('MINICOREDUMPER_STORE_IMPORT') == '1' else ''}"
INITSCRIPT_NAME:${PN} = "minicoredumper"
INITSCRIPT_PARAMS:${PN} = "start 38 S ."
INITSCRIPT_NAME:${PN}-daemon = "minicoredumper-regd"
INITSCRIPT_PARAMS:${PN}-daemon = "start 39 S . stop 20 0 1 6 ."
INITSCRIPT_NAME:${PN}-tools = "minicoredumper-store-import"
INITSCRIPT_PARAMS:${PN}-tools = "start 40 S ."

# The package test (ptest.bbclass, DISTRO_FEATURES "ptest"): ${PN}-ptest holds run-ptest,
# which crashes the programs of minicoredumper-crashtests (in ${PTEST_PATH}/bin) under the
# installed handler and checks their dumps; see "The package test" in the layer's README.md.
# nooelint: oelint.var.order.SRC_URI - the package test's lines are kept together, here
SRC_URI += "file://run-ptest"
do_install_ptest() {
    sed -i -e 's|@SBINDIR@|${sbindir}|g' -e 's|@BINDIR@|${bindir}|g' \
        -e 's|@SYSCONFDIR@|${sysconfdir}|g' -e 's|@SYSCTLDIR@|${MINICOREDUMPER_SYSCTLDIR}|g' \
        -e 's|@RUNDIR@|${runtimedir}|g' ${D}${PTEST_PATH}/run-ptest
}
RDEPENDS:${PN}-ptest += "minicoredumper-crashtests"
