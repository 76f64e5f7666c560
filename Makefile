# grpcgo: `make demo` runs the helloworld example through this package,
# `make test` runs every test. Both build and install into ./.venv first.

PYTHON ?= python3
VENV := .venv
VENV_PY := $(CURDIR)/$(VENV)/bin/python
PYINC := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
# cgo code in pyext/ needs Python's headers, for go vet/test too.
export CGO_CFLAGS := -I$(PYINC) -O2

# What the project venv needs besides our package: protobuf for the
# examples and tests, pytest to run them. Our package is itself the `grpcio`
# distribution, so nothing here can pull PyPI's grpcio in.
TEST_DEPS := protobuf pytest pytest-timeout uvloop mypy types-protobuf h2 opentelemetry-sdk

SOURCES := go.mod go.sum setup.py pyproject.toml MANIFEST.in \
	$(shell find core pyext python patches -type f \( -name '*.go' -o -name '*.c' -o -name '*.h' -o -name '*.py' -o -name '*.in' \) 2>/dev/null)

# grpc-go with grpcgo's change for metadata order (patches/grpc_go_patch.py),
# for go vet and go test; setup.py builds the engine with the same.
GO_PATCH := $(CURDIR)/build/grpc-go-patch
GO_PATCHED := -modfile=$(GO_PATCH)/go.mod -tags=grpcgo_patched

.PHONY: all install test test-go test-py demo check-wheel clean

all: install

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.deps: $(VENV)/bin/python Makefile
	$(VENV)/bin/pip install --quiet $(TEST_DEPS)
	touch $@

# pip install . builds the Go engine into the wheel and installs it, as the
# distribution `grpcio` (version 1.85.4+grpcgo.*; see pyproject.toml). A venv
# made before that held it as `grpcgo`: that record goes first, so that no two
# distributions claim the files of grpc/.
$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(VENV)/bin/pip uninstall --quiet --yes grpcgo 2>/dev/null || true
	$(VENV)/bin/pip install --quiet --force-reinstall --no-deps .
	touch $@

install: $(VENV)/.installed

test: test-go test-py

$(GO_PATCH)/stamp: go.mod go.sum $(wildcard patches/*.py patches/grpc-go/*.in)
	$(PYTHON) patches/grpc_go_patch.py $(GO_PATCH)

test-go: $(GO_PATCH)/stamp
	go vet $(GO_PATCHED) ./...
	go test -race -count=1 $(GO_PATCHED) ./...
	go test -race -count=1 $(GO_PATCHED) google.golang.org/grpc/internal/transport

test-py: install
	cd tests && $(VENV_PY) -m pytest -q -p no:cacheprovider .

# python -m build: an sdist, then a wheel built from it, installed into a
# fresh venv and exercised.
check-wheel: $(VENV)/.deps
	rm -rf build/dist build/wheel-venv
	$(VENV)/bin/pip install --quiet build
	$(VENV_PY) -m build --outdir build/dist .
	$(PYTHON) -m venv build/wheel-venv
	build/wheel-venv/bin/pip install --quiet build/dist/*.whl
	cd build && wheel-venv/bin/python ../tools/wheel_smoke.py

clean:
	rm -rf build dist $(VENV) python/*.egg-info

include mk/gopy.mk
include mk/examples.mk
include mk/interop.mk
include mk/bench.mk
include mk/soak.mk
include mk/wheels.mk
