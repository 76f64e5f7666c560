# grpcgo: `make demo` runs the helloworld example through this package,
# `make test` runs every test. Both build and install into ./.venv first.

PYTHON ?= python3
VENV := .venv
VENV_PY := $(CURDIR)/$(VENV)/bin/python
PYINC := $(shell $(PYTHON) -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
# cgo code in pyext/ needs Python's headers, for go vet/test too.
export CGO_CFLAGS := -I$(PYINC) -O2

# What the project venv needs besides our package: protobuf for the
# examples and tests, pytest to run them. Never grpcio: it owns `import grpc`.
TEST_DEPS := protobuf pytest pytest-timeout

SOURCES := go.mod go.sum setup.py pyproject.toml MANIFEST.in \
	$(shell find core pyext python -type f \( -name '*.go' -o -name '*.c' -o -name '*.h' -o -name '*.py' \) 2>/dev/null)

.PHONY: all install test test-go test-py demo wheel clean

all: install

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip

$(VENV)/.deps: $(VENV)/bin/python
	$(VENV)/bin/pip install --quiet $(TEST_DEPS)
	touch $@

# pip install . builds the Go engine into the wheel and installs it.
$(VENV)/.installed: $(VENV)/.deps $(SOURCES)
	$(VENV)/bin/pip install --quiet --force-reinstall --no-deps .
	touch $@

install: $(VENV)/.installed

test: test-go test-py

test-go:
	go vet ./...
	go test -race -count=1 ./...

test-py: install
	cd tests && $(VENV_PY) -m pytest -q -p no:cacheprovider .

wheel:
	$(PYTHON) -m pip wheel --no-deps -w dist .

clean:
	rm -rf build dist $(VENV) python/*.egg-info

include mk/gopy.mk
include mk/examples.mk
