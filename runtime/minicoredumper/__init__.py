"""minicoredumper: small, configurable ELF core dumps for embedded Linux.

The crash path (handler) reads the crash, decides what to dump, writes the
artefacts and publishes them; see the module docstrings for each stage.
"""

__version__ = "0.2.0"
