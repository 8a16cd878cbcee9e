# meta-minicoredumper/recipes-core/images/minicoredumper-test-image.bb: the test image of
# the layer: core-image-minimal plus the minicoredumper runtime (handler, registry
# daemon, tools), libminicoredumper and the crash test programs.
SUMMARY = "core-image-minimal with minicoredumper and programs that crash on purpose"
DESCRIPTION = "A small bootable image for trying minicoredumper on a target: crash3, \
               threads8 and mycrasher crash and leave their dumps in the base_dir of \
               /etc/minicoredumper/minicoredumper.cfg.json."
LICENSE = "MIT"

# nooelint: oelint.file.requirenotfound - oe-core's image, found through BBPATH in a build
require recipes-core/images/core-image-minimal.bb

IMAGE_INSTALL += "minicoredumper \
                  minicoredumper-daemon \
                  minicoredumper-tools \
                  libminicoredumper \
                  minicoredumper-crashtests"
