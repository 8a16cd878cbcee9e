"""tests/layer/pystubs/prserv/serv.py: importable placeholder; ``bb.cooker`` imports
``prserv.serv`` and uses it only to start or reach a PR server, which the layer tests
never do."""


def auto_start(d):
    raise RuntimeError("the layer tests have no PR server")


def auto_shutdown():
    pass
