# meta-minicoredumper/recipes-core/images/minicoredumper-test-image.bb: the test image of
# the layer: core-image-minimal plus the minicoredumper runtime (handler, registry
# daemon, tools), libminicoredumper, the crash test programs and, with the ptest distro
# feature, the package test that crashes them (minicoredumper-ptest).
SUMMARY = "core-image-minimal with minicoredumper and programs that crash on purpose"
DESCRIPTION = "A small bootable image for trying minicoredumper on a target: \
               /usr/lib/minicoredumper/ptest/run-ptest crashes crash3, threads8, \
               secret and mycrasher (from bin/ next to it) and checks their dumps."
LICENSE = "MIT"

# nooelint: oelint.file.requirenotfound - oe-core's image, found through BBPATH in a build
require recipes-core/images/core-image-minimal.bb

IMAGE_INSTALL += "minicoredumper \
                  minicoredumper-daemon \
                  minicoredumper-tools \
                  libminicoredumper \
                  minicoredumper-crashtests \
                  ${@bb.utils.contains('DISTRO_FEATURES', 'ptest', 'minicoredumper-ptest', '', d)}"
