# tests/layer/stubcore/classes/base.bbclass: the class every recipe of the layer smoke
# test inherits (BitBake adds it by itself). Written for the test: it declares the tasks
# up to do_install with the directory flags a real build uses, the shell helpers the
# recipes call (oe_runmake, bbfatal and friends) and empty defaults for the tasks.

bbnote() {
	echo "NOTE: $*"
}

bbwarn() {
	echo "WARNING: $*" >&2
}

bberror() {
	echo "ERROR: $*" >&2
}

bbfatal() {
	echo "FATAL: $*" >&2
	exit 1
}

# make with the recipe's EXTRA_OEMAKE, failing the task on error.
oe_runmake() {
	${MAKE} ${PARALLEL_MAKE} ${EXTRA_OEMAKE} "$@" || bbfatal "make $* failed"
}

do_fetch[noexec] = "1"
do_unpack[noexec] = "1"

do_configure() {
	:
}
do_configure[dirs] = "${B}"

# Like a real build: run make when the build directory has a Makefile.
do_compile() {
	if [ -e Makefile ] || [ -e makefile ] || [ -e GNUmakefile ]; then
		oe_runmake
	fi
}
do_compile[dirs] = "${B}"

do_install() {
	:
}
do_install[dirs] = "${B}"
do_install[cleandirs] = "${D}"

do_build() {
	:
}

addtask fetch
addtask unpack after do_fetch
addtask configure after do_unpack
addtask compile after do_configure
addtask install after do_compile
addtask build after do_install
