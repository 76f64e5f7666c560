# mk/interop.mk -- proof against real peers: the gRPC interop matrix, the
# companion packages, the interop and route_guide stubs.
#
# Included by the main Makefile, which provides VENV_PY (the project venv's
# python, with our `grpc`) and the `install` target.
#
# Targets:
#   interop        build the peers (below), run every locally runnable interop
#                  case in every direction between grpcgo and grpc-go / grpcio
#                  (plaintext and TLS), write docs/INTEROP.md; exits non-zero
#                  when a case failed (after writing the table).
#                  INTEROP_ARGS="--directions=... --cases=..." narrows the run
#                  (`python interop/run_matrix.py --help`).
#   interop-peers  grpc-go's interop client and server and grpcurl (go install
#                  pkg@version from the module proxy, outside our module) and a
#                  grpcio venv, all under build/interop/. Pins: interop/peers.py.
#   companions     grpcio-health-checking, -reflection, -status, -testing into
#                  the project venv with plain pip
#                  (interop/requirements-companions.txt): our `grpcio`
#                  distribution satisfies their `grpcio` requirement. Then
#                  check that `import grpc` is still ours and `pip check` is
#                  clean. test-py depends on it.
#   interop-stubs  regenerate the grpc.testing stubs in interop/src and the
#                  route_guide stubs in examples/route_guide with grpcio-tools
#                  in the throwaway tools venv (never the project venv).

INTEROP_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
INTEROP_TOOLS_VENV := $(INTEROP_ROOT)/build/tools-venv
GRPCIO_TOOLS_VERSION ?= 1.85.1
TOOLS_PYTHON ?= python3
VENV_PY ?= $(INTEROP_ROOT)/.venv/bin/python
INTEROP_ARGS ?=
INTEROP_TIMEOUT ?= 3600
COMPANIONS_REQ := $(INTEROP_ROOT)/interop/requirements-companions.txt

.PHONY: interop interop-peers companions interop-stubs

interop: install interop-peers
	timeout --kill-after=30 $(INTEROP_TIMEOUT) \
		'$(VENV_PY)' '$(INTEROP_ROOT)/interop/run_matrix.py' --python='$(VENV_PY)' $(INTEROP_ARGS)

interop-peers: install
	'$(VENV_PY)' '$(INTEROP_ROOT)/interop/peers.py' go-interop
	'$(VENV_PY)' '$(INTEROP_ROOT)/interop/peers.py' grpcurl
	'$(VENV_PY)' '$(INTEROP_ROOT)/interop/peers.py' grpcio

# Plain pip: `grpcio` is already satisfied by our distribution; the checks
# after it prove that pip kept it.
$(VENV)/.companions: $(COMPANIONS_REQ) $(VENV)/.installed
	'$(VENV_PY)' -m pip install --quiet --disable-pip-version-check \
		-r '$(COMPANIONS_REQ)'
	cd /tmp && '$(VENV_PY)' -c 'import glob, os, grpc; \
		here = os.path.dirname(grpc.__file__); \
		assert glob.glob(os.path.join(here, "_engine*.so")), here + " is not grpcgo"'
	'$(VENV_PY)' -m pip check --disable-pip-version-check
	touch $@

companions: $(VENV)/.companions

test-py: companions

interop-stubs:
	test -x '$(INTEROP_TOOLS_VENV)/bin/python' || $(TOOLS_PYTHON) -m venv '$(INTEROP_TOOLS_VENV)'
	'$(INTEROP_TOOLS_VENV)/bin/python' -m pip install --quiet --disable-pip-version-check \
		'grpcio-tools==$(GRPCIO_TOOLS_VERSION)'
	cd '$(INTEROP_ROOT)/interop' && '$(INTEROP_TOOLS_VENV)/bin/python' -m grpc_tools.protoc \
		-I. --python_out=. --pyi_out=. \
		src/proto/grpc/testing/empty.proto src/proto/grpc/testing/messages.proto
	cd '$(INTEROP_ROOT)/interop' && '$(INTEROP_TOOLS_VENV)/bin/python' -m grpc_tools.protoc \
		-I. --python_out=. --pyi_out=. --grpc_python_out=. src/proto/grpc/testing/test.proto
	cd '$(INTEROP_ROOT)/examples/route_guide' && '$(INTEROP_TOOLS_VENV)/bin/python' -m grpc_tools.protoc \
		-I. --python_out=. --pyi_out=. --grpc_python_out=. route_guide.proto
	@grep -q "^GRPC_GENERATED_VERSION = '$(GRPCIO_TOOLS_VERSION)'" \
		'$(INTEROP_ROOT)/examples/route_guide/route_guide_pb2_grpc.py' || \
		{ echo 'interop-stubs: GRPC_GENERATED_VERSION is not $(GRPCIO_TOOLS_VERSION)' >&2; exit 1; }
