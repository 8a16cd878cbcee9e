# meta-minicoredumper/recipes-core/minicoredumper/minicoredumper_1.0.bb: packages the
# Python runtime of this repository (runtime/minicoredumper, conf/) for targets: the crash
# handler, its configuration and the core_pattern wiring; the registry daemon; the tools.
SUMMARY = "Small, configurable ELF core dumps for embedded Linux (Python minicoredumper)"
DESCRIPTION = "A core_pattern pipe handler that writes minimal, application-specific \
               core dumps described by JSON recepts, plus the registry daemon for live \
               dumps of registered applications and offline tools (mcd, coreinject)."
SECTION = "devel"
LICENSE = "BSD-2-Clause"
# The project's own LICENSE, at the top of this repository (in SRC_URI below).
# nooelint: oelint.var.licenseremotefile - the sources, LICENSE among them, are this repository
LIC_FILES_CHKSUM = "file://${UNPACKDIR}/LICENSE;md5=4d533907d37abe8436351e906aa9a09a"

# Sources: this checkout, not a download. The layer lives in the repository, three
# directories above this recipe; on FILESEXTRAPATHS that root lets file:// name runtime/
# and conf/ there, and BitBake checksums every file in them, so a change rebuilds the
# package. runtime/ is taken whole because launcher.in may sit in runtime/ or in the
# package directory.
# nooelint: oelint.vars.fileextrapaths,oelint.vars.outofcontext - the sources are this repository
FILESEXTRAPATHS:prepend := "${THISDIR}/../../..:"
SRC_URI = "file://LICENSE \
           file://runtime/ \
           file://conf/ \
           file://60-minicoredumper.conf.in \
           file://minicoredumper.init \
           file://minicoredumper-regd.init \
           file://minicoredumper-regd.service"
S = "${UNPACKDIR}"

# Plain install, not python_setuptools_build_meta: the handler is started by the kernel
# for every crash and must start fast and small, as "python3 -I -S" (no site, no paths
# from the environment) from a launcher made from launcher.in. A wheel install would
# need python3-setuptools-native and a build step for a package that is pure Python,
# and would ship dist-info metadata nothing on the target reads and entry-point scripts
# that run with site processing. So the package directory is copied, byte-compiled with
# the build's python3-native (the target's Python version), and each [project.scripts]
# entry of runtime/pyproject.toml gets a launcher.
inherit python3-dir python3native systemd update-rc.d

do_configure[noexec] = "1"
do_compile[noexec] = "1"

# Console scripts installed to sbindir; any other [project.scripts] entry goes to bindir.
MINICOREDUMPER_SBIN_SCRIPTS = "minicoredumper minicoredumper_regd minicoredumper_trigger \
                               minicoredumper_sockd"
# The watch rules of the installed main config point at this recept: on targets the
# embedded recept (small enough for the EEPROM budget) replaces the generic one.
MINICOREDUMPER_TARGET_RECEPT ?= "embedded.recept.json"
# kernel.core_pipe_limit: must not be 0, or /proc/PID may vanish while the handler runs.
# The original installs 0x7fffffff (no limit on concurrent handlers).
MINICOREDUMPER_CORE_PIPE_LIMIT ?= "2147483647"
MINICOREDUMPER_SYSCTLDIR = "${nonarch_libdir}/sysctl.d"

do_install() {
    pkgsrc=${S}/runtime/minicoredumper
    sitedir=${PYTHON_SITEPACKAGES_DIR}

    # The package directory, without byte code, caches or the launcher template.
    install -d ${D}$sitedir/minicoredumper
    (cd $pkgsrc && find . -name __pycache__ -prune -o -type f ! -name '*.py[co]' \
        ! -name launcher.in -print) | while read -r f; do
        install -D -m 0644 "$pkgsrc/$f" "${D}$sitedir/minicoredumper/$f"
    done
    # Byte code made now: a read-only root file system cannot cache it, and compiling
    # at every crash would slow the handler. checked-hash stays valid whatever time
    # stamps the root file system gets; -d records target paths, not ${D}.
    ${PYTHON} -m compileall -q --invalidation-mode checked-hash \
        -d $sitedir/minicoredumper ${D}$sitedir/minicoredumper

    # Launchers, one per console script of runtime/pyproject.toml. The crash handler's
    # comes from launcher.in, which also points fds 1 and 2 at /dev/null (the kernel
    # starts it with fd 0 only); the other scripts print, so they get a plain one.
    launcher=${S}/runtime/launcher.in
    [ -f $launcher ] || launcher=$pkgsrc/launcher.in
    ${PYTHON} -c 'import sys, tomllib
with open(sys.argv[1], "rb") as f:
    scripts = tomllib.load(f)["project"].get("scripts", {})
for name, target in sorted(scripts.items()):
    print(name, target)' ${S}/runtime/pyproject.toml > ${T}/console-scripts
    install -d ${D}${sbindir} ${D}${bindir}
    while read -r name target; do
        if [ "${target#*:}" != main ]; then
            bbfatal "console script $name runs $target, but the launchers call main()"
        fi
        case " ${MINICOREDUMPER_SBIN_SCRIPTS} " in
        *" $name "*) dest=${D}${sbindir}/$name ;;
        *) dest=${D}${bindir}/$name ;;
        esac
        module=${target%%:*}
        if [ $name = minicoredumper ]; then
            sed -e 's|@PYTHON@|${bindir}/python3|' -e "s|@SITEDIR@|$sitedir|" \
                -e "s|@MODULE@|$module|" $launcher > $dest
        else
            {
                echo "#!${bindir}/python3 -IS"
                echo "# $name: console script of minicoredumper (made by its recipe)"
                echo "import sys"
                echo "sys.path.append(\"$sitedir\")"
                echo "from $module import main"
                echo "sys.exit(main())"
            } > $dest
        fi
        chmod 0755 $dest
    done < ${T}/console-scripts

    # Configuration defaults.
    install -d ${D}${sysconfdir}/minicoredumper
    for f in ${S}/conf/*.json; do
        install -m 0644 $f ${D}${sysconfdir}/minicoredumper/
    done
    sed -i -e 's|generic\.recept\.json|${MINICOREDUMPER_TARGET_RECEPT}|g' \
        ${D}${sysconfdir}/minicoredumper/minicoredumper.cfg.json

    # core_pattern wiring, see the packaging notes below.
    install -d ${D}${MINICOREDUMPER_SYSCTLDIR}
    sed -e 's|@SBINDIR@|${sbindir}|g' \
        -e 's|@CORE_PIPE_LIMIT@|${MINICOREDUMPER_CORE_PIPE_LIMIT}|g' \
        ${UNPACKDIR}/60-minicoredumper.conf.in > ${D}${MINICOREDUMPER_SYSCTLDIR}/60-minicoredumper.conf
    chmod 0644 ${D}${MINICOREDUMPER_SYSCTLDIR}/60-minicoredumper.conf

    install -d ${D}${INIT_D_DIR} ${D}${systemd_system_unitdir}
    for f in minicoredumper minicoredumper-regd; do
        sed -e 's|@SBINDIR@|${sbindir}|g' -e 's|@SYSCONFDIR@|${sysconfdir}|g' \
            -e 's|@SYSCTLDIR@|${MINICOREDUMPER_SYSCTLDIR}|g' -e 's|@RUNDIR@|${runtimedir}|g' \
            ${UNPACKDIR}/$f.init > ${D}${INIT_D_DIR}/$f
        chmod 0755 ${D}${INIT_D_DIR}/$f
    done
    sed -e 's|@SBINDIR@|${sbindir}|g' ${UNPACKDIR}/minicoredumper-regd.service \
        > ${D}${systemd_system_unitdir}/minicoredumper-regd.service
    chmod 0644 ${D}${systemd_system_unitdir}/minicoredumper-regd.service
}

# Packaging notes.
#
# ${PN} is the crash handler: the whole Python package (the daemon and the tools reuse
# its readers and writers), the handler launcher, the configuration and the
# core_pattern wiring. The kernel runs it at every crash, so it needs python3-core and
# python3-json only, plus python3-compression for the built-in zstd compressor
# (compression.zstd since Python 3.14; gzip, xz and bzip2 use zlib, lzma and bz2 from
# core). That one costs nothing: wrynose's python3-core RDEPENDS python3-compression.
# No python3-io: socket would pull python3-netclient, email and OpenSSL onto every
# target. tests/layer/test_crashpath_imports.py checks that every module the handler
# can import stays inside these packages.
#
# core_pattern is set in two ways because the two init systems share no mechanism:
#  - systemd images: systemd-sysctl applies sysctl.d drop-ins at boot, in file-name
#    order over /etc, /run and /usr/lib. 60-minicoredumper.conf sorts after systemd's
#    50-coredump.conf and so wins. It lives in ${nonarch_libdir}/sysctl.d (a package's
#    place; /etc/sysctl.d is the admin's, and a file of the same name there overrides
#    it); not ${libdir}, which is lib64 on some multilib machines and never read.
#  - sysvinit images read only /etc/sysctl.conf, and wrynose's systemd no longer runs
#    init scripts, so neither mechanism covers both. ${INIT_D_DIR}/minicoredumper
#    writes the values of the same drop-in (the admin's copy first) to /proc/sys at
#    boot: one source for both init systems.
# That boot script belongs to ${PN}, not to ${PN}-daemon: an image with only the handler
# must still get core_pattern, and the handler must not need the daemon's dependencies.
# ${PN}-daemon has its own unit and script for minicoredumper_regd. systemd.bbclass
# deletes ${INIT_D_DIR} on systemd images (and the unit directory on others) and keeps
# update-rc.d.bbclass from registering scripts there, so both are installed always.
PACKAGE_BEFORE_PN = "${PN}-daemon ${PN}-tools"

FILES:${PN} += "${PYTHON_SITEPACKAGES_DIR}/minicoredumper \
                ${MINICOREDUMPER_SYSCTLDIR}/60-minicoredumper.conf"
FILES:${PN}-daemon += "${sbindir}/minicoredumper_regd \
                       ${sbindir}/minicoredumper_trigger \
                       ${sbindir}/minicoredumper_sockd \
                       ${INIT_D_DIR}/minicoredumper-regd \
                       ${systemd_system_unitdir}/minicoredumper-regd.service"
# Everything in bindir: mcd, coreinject and any later console script not in sbindir.
FILES:${PN}-tools += "${bindir}"

CONFFILES:${PN} = "${sysconfdir}/minicoredumper/minicoredumper.cfg.json \
                   ${sysconfdir}/minicoredumper/generic.recept.json \
                   ${sysconfdir}/minicoredumper/embedded.recept.json"

RDEPENDS:${PN} = "python3-compression python3-core python3-json"
# python3-core directly too: the launchers' #!/usr/bin/python3 must be provided by a
# direct RDEPENDS, or the file-rdeps QA check fails. The registry speaks AF_UNIX
# datagrams and minicoredumper_sockd (the resident handler on the kernel's coredump
# socket, Linux 6.16+) a stream socket: socket is in python3-io. minicoredumper_trigger stops processes with
# ptrace through libc: python3-ctypes (the handler only starts it, as a program).
RDEPENDS:${PN}-daemon = "${PN} python3-core python3-ctypes python3-io"
RDEPENDS:${PN}-tools = "${PN} python3-core"

SYSTEMD_PACKAGES = "${PN}-daemon"
SYSTEMD_SERVICE:${PN}-daemon = "minicoredumper-regd.service"

INITSCRIPT_PACKAGES = "${PN} ${PN}-daemon"
# Early in rcS, after populate-volatile (S37), so that crashes later in boot are caught.
INITSCRIPT_NAME:${PN} = "minicoredumper"
INITSCRIPT_PARAMS:${PN} = "start 38 S ."
INITSCRIPT_NAME:${PN}-daemon = "minicoredumper-regd"
INITSCRIPT_PARAMS:${PN}-daemon = "start 39 S . stop 20 0 1 6 ."
