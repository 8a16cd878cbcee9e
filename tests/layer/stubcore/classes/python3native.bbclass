# tests/layer/stubcore/classes/python3native.bbclass: ${PYTHON}, the build's own Python,
# for tasks. Smoke-test stand-in: the host interpreter the harness names in local.conf.
inherit python3-dir

PYTHON = "${HOST_PYTHON3}"
DEPENDS:append = " python3-native"
