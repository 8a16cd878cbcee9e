# tests/layer/stubcore/classes/systemd.bbclass: the variables a recipe gives systemd
# packaging, with their usual defaults. Smoke-test stand-in: no postinst scripts, no
# presets, no pruning of init directories; the test checks the values.
SYSTEMD_PACKAGES ?= "${PN}"
SYSTEMD_PACKAGES:class-native ?= ""
SYSTEMD_AUTO_ENABLE ??= "enable"

python __anonymous() {
    if bb.utils.contains('DISTRO_FEATURES', 'systemd', True, False, d):
        d.appendVar("DEPENDS", " systemd-systemctl-native")
        d.setVar("INHIBIT_UPDATERCD_BBCLASS", "1")
}
