# mk/examples.mk -- the helloworld example: stub generation and `make demo`.
#
# Included by the main Makefile, which provides:
#   VENV_PY  path of the project venv's python (our `grpc` package + protobuf)
#   install  target that creates that venv
#
# Targets:
#   stubs  recreate a throwaway grpcio-tools venv under build/tools-venv and
#          regenerate examples/helloworld/helloworld_pb2{.py,.pyi,_grpc.py}
#          with the pinned grpcio-tools (and PyPI's grpcio), away from the
#          project venv, which holds only what the tests need.
#   demo   start the example server on a free loopback port, run the client
#          against it, check its output, and always stop the server.
#
# Stubs checked in were generated with grpcio-tools 1.85.1 (newest on PyPI at
# the time), so they carry GRPC_GENERATED_VERSION = '1.85.1': our
# grpc.__version__ must be >= that. To move to a newer grpcio-tools, change
# GRPCIO_TOOLS_VERSION, run `make stubs`, and check the diff.

EXAMPLES_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
HELLOWORLD_DIR := $(EXAMPLES_ROOT)/examples/helloworld

GRPCIO_TOOLS_VERSION ?= 1.85.1
TOOLS_PYTHON ?= python3
TOOLS_VENV := $(EXAMPLES_ROOT)/build/tools-venv
VENV_PY ?= $(EXAMPLES_ROOT)/.venv/bin/python
DEMO_TIMEOUT ?= 120

.PHONY: stubs demo

stubs:
	rm -rf '$(TOOLS_VENV)'
	$(TOOLS_PYTHON) -m venv '$(TOOLS_VENV)'
	'$(TOOLS_VENV)/bin/python' -m pip install --quiet --disable-pip-version-check \
		'grpcio-tools==$(GRPCIO_TOOLS_VERSION)'
	cd '$(HELLOWORLD_DIR)' && '$(TOOLS_VENV)/bin/python' -m grpc_tools.protoc \
		-I. --python_out=. --pyi_out=. --grpc_python_out=. helloworld.proto
	@grep -q "^GRPC_GENERATED_VERSION = '$(GRPCIO_TOOLS_VERSION)'" \
		'$(HELLOWORLD_DIR)/helloworld_pb2_grpc.py' || \
		{ echo 'stubs: GRPC_GENERATED_VERSION is not $(GRPCIO_TOOLS_VERSION)' >&2; exit 1; }
	@echo 'stubs: generated with grpcio-tools $(GRPCIO_TOOLS_VERSION) in $(HELLOWORLD_DIR)'

# demo.sh starts the server with port 0 (the kernel picks a free loopback
# port; the server prints it), runs the client, checks the replies, and kills
# the server from an EXIT trap. `timeout` bounds the whole run.
demo: install
	timeout --kill-after=10 $(DEMO_TIMEOUT) \
		sh '$(HELLOWORLD_DIR)/demo.sh' '$(VENV_PY)'
