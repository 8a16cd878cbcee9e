# tests/layer/stubcore/classes/python3-dir.bbclass: where the target's Python keeps its
# modules, as wrynose's python3 (3.14) lays them out. Smoke-test stand-in.
PYTHON_BASEVERSION = "3.14"
PYTHON_ABI = ""
PYTHON_DIR = "python${PYTHON_BASEVERSION}"
PYTHON_PN = "python3"
PYTHON_SITEPACKAGES_DIR = "${libdir}/${PYTHON_DIR}/site-packages"
