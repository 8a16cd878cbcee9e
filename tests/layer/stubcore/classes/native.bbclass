# tests/layer/stubcore/classes/native.bbclass: turns a recipe into its build-host
# variant (BBCLASSEXTEND = "native"). Smoke-test stand-in: the native override, paths
# under the native sysroot, no target packages.
CLASSOVERRIDE = "class-native"
prefix = "${STAGING_DIR_NATIVE}/usr"
sysconfdir = "${STAGING_DIR_NATIVE}/etc"
localstatedir = "${STAGING_DIR_NATIVE}/var"
PACKAGES = ""
