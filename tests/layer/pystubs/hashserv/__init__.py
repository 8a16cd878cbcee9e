"""tests/layer/pystubs/hashserv: a stand-in for BitBake's hash equivalence package.

The bitbake-setup wheel ships BitBake's ``bb`` package but not ``hashserv``, which
``bb.siggen`` and ``bb.cooker`` import at module level. The layer smoke test only parses
recipes and never talks to a hash equivalence server, so this module offers the three
names ``bb`` uses and refuses any attempt to reach a server.
"""

import re

_UNIHASH = re.compile(r"^[0-9a-fA-F]{1,256}$")


def is_valid_unihash(unihash):
    """A unihash is a non-empty string of hex digits."""
    return isinstance(unihash, str) and bool(_UNIHASH.match(unihash))


def create_client(*args, **kwargs):
    raise RuntimeError("the layer smoke test has no hash equivalence server")


def create_server(*args, **kwargs):
    raise RuntimeError("the layer smoke test has no hash equivalence server")
