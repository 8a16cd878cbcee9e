"""tests/layer/pystubs/hashserv/client.py: importable placeholder; ``bb.siggen`` imports
``hashserv.client`` but reaches a server only through ``hashserv.create_client``."""
