# mk/gopy.mk -- regenerate the gopy-bound cold module (grpc._introspect).
#
# Included by the main Makefile. Needs only Go (gopy v0.4.10 and goimports are
# `tool` deps in go.mod) and network access for pip the first time: pybindgen
# is installed into a throwaway venv under build/_gopy/venv.
#
# Targets:
#   gopy        regenerate from core/introspect and overwrite the committed
#               pyext/introspect_gopy.{go,c} and
#               python/grpc/_introspect/{introspect,go}.py (see
#               tools/gen_gopy.py for the post-processing that makes gopy's
#               output build inside ./pyext).
#   gopy-check  regenerate under build/_gopy/out and fail if the committed
#               files differ (for CI).
#   gopy-clean  remove build/_gopy.
#
# GOPY_PYTHON=/path/to/python  use an interpreter that already has pybindgen
#                              instead of the venv (e.g. offline).

GOPY_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
GOPY_GEN_PYTHON ?= python3

.PHONY: gopy gopy-check gopy-clean

gopy:
	cd '$(GOPY_ROOT)' && $(GOPY_GEN_PYTHON) tools/gen_gopy.py

gopy-check:
	cd '$(GOPY_ROOT)' && $(GOPY_GEN_PYTHON) tools/gen_gopy.py --check

gopy-clean:
	rm -rf '$(GOPY_ROOT)/build/_gopy'
