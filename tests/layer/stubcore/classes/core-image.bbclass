# tests/layer/stubcore/classes/core-image.bbclass: what an image recipe inherits.
# Smoke-test stand-in: an image has a package list and no packages of its own.
IMAGE_INSTALL ?= ""
CORE_IMAGE_EXTRA_INSTALL ?= ""
IMAGE_FEATURES ??= ""
PACKAGES = ""

do_rootfs() {
	:
}
addtask rootfs after do_install before do_build
