# tests/layer/stubcore/recipes-core/images/core-image-minimal.bb: the stand-in for
# oe-core's smallest image, for the layer's test image to require.
SUMMARY = "Smallest bootable image (layer smoke-test stand-in)"
LICENSE = "MIT"
IMAGE_INSTALL = "packagegroup-core-boot ${CORE_IMAGE_EXTRA_INSTALL}"
inherit core-image
