# tests/layer/stubcore/classes/bash-completion.bbclass: oe-core's class, as it is: the
# recipe's bash completions (${datadir}/bash-completion, ${sysconfdir}/bash_completion.d)
# go to ${PN}-bash-completion, put first in PACKAGES, which RDEPENDS on bash-completion.
DEPENDS:append:class-target = " bash-completion"

PACKAGES =+ "${PN}-bash-completion"

FILES:${PN}-bash-completion = "${datadir}/bash-completion ${sysconfdir}/bash_completion.d"

RDEPENDS:${PN}-bash-completion = "bash-completion"
