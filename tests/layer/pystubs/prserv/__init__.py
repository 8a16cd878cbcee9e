"""tests/layer/pystubs/prserv: a stand-in for BitBake's PR service package.

The bitbake-setup wheel ships BitBake's ``bb`` package but not ``prserv``, which
``bb.cooker`` imports at module level. The layer tests import bb.cooker only for its
layer priority code (bbharness.py: which recipe BitBake picks for a name) and never
start or reach a PR server.
"""
