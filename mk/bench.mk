# mk/bench.mk -- the side-by-side benchmark (bench/, docs/BENCHMARKS.md).
#
# Included by the main Makefile, which provides PYTHON, VENV_PY and `install`.
#
# Targets:
#   bench          every contender (grpcgo, grpcio, grpc-go, ghz), BENCH_REPEAT
#                  repeats (default 3), alternating; rewrites the results
#                  section of docs/BENCHMARKS.md and build/bench/results.json.
#                  Several minutes; bounded by BENCH_TIMEOUT seconds.
#   bench-smoke    the same with tiny counts and one repeat (seconds once the
#                  tools are built); writes build/bench/BENCHMARKS-smoke.md,
#                  never docs/. BENCH_SMOKE=1 make bench does the same.
#   bench-profile  profiles grpcgo's unary paths (py-spy, perf, Go pprof of
#                  the grpc-go floor) into build/bench/profile/; see
#                  bench/profile.py.
#   bench-floors   bench/floors.py: what issue 15's open targets ask against
#                  grpc-go with the hand-offs a Python binding cannot avoid
#                  (ghz -c 16, ping-pong, 8 threads, bidi), BENCH_REPEAT
#                  rounds; build/bench/floors.json. See docs/BENCHMARKS.md,
#                  "Floors".
#   bench-tools    builds what bench needs: the grpcio venv, gobench, ghz.
#   Only the grpc.aio rows: BENCH_ARGS='--only aio,aiouv' (writes their own
#   section of docs/BENCHMARKS.md).
#   bench-clean    removes build/bench, the grpcio and profiling venvs, and
#                  the bench binaries.
#
# Knobs:
#   BENCH_CONTENDERS=ours,grpcio,go,ghz  which contenders run (and get built)
#   BENCH_OURS_PY=/path/to/python        measure another grpcgo install than
#                                        ./.venv (e.g. a snapshot of a commit);
#                                        BENCH_OURS_LABEL=... names it in the table
#   BENCH_REPEAT=N                       repeats (default 3)
#   BENCH_ARGS=...                       more arguments for bench/run.py
#
# grpcio lives in its own venv (build/bench-grpcio-venv, same $(PYTHON)):
# it owns `import grpc` too, so it never goes near ./.venv. The bench scripts
# print which grpc they imported and the run aborts on the wrong one.

BENCH_ROOT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))..)
BENCH_BIN := $(BENCH_ROOT)/build/bin
BENCH_GRPCIO_VENV := $(BENCH_ROOT)/build/bench-grpcio-venv
BENCH_PROF_VENV := $(BENCH_ROOT)/build/bench-prof-venv
BENCH_GRPCIO_VERSION ?= 1.85.1
BENCH_GHZ_VERSION ?= v0.120.0
BENCH_PYSPY_VERSION ?= 0.4.3
BENCH_CONTENDERS ?= ours,grpcio,go,ghz
BENCH_OURS_PY ?= $(VENV_PY)
BENCH_TIMEOUT ?= 1500
BENCH_SMOKE_TIMEOUT ?= 300

bench_has = $(findstring $(1),$(BENCH_CONTENDERS))
BENCH_DEPS := \
	$(if $(call bench_has,ours),$(if $(filter $(VENV_PY),$(BENCH_OURS_PY)),install)) \
	$(if $(call bench_has,grpcio),$(BENCH_GRPCIO_VENV)/.installed $(BENCH_GRPCIO_VENV)/.uvloop) \
	$(if $(call bench_has,go),$(BENCH_BIN)/gobench) \
	$(if $(call bench_has,ghz),$(BENCH_BIN)/ghz)

BENCH_RUN = '$(PYTHON)' '$(BENCH_ROOT)/bench/run.py' \
	--contenders '$(BENCH_CONTENDERS)' \
	--ours-python '$(BENCH_OURS_PY)' \
	--grpcio-python '$(BENCH_GRPCIO_VENV)/bin/python' \
	--gobench '$(BENCH_BIN)/gobench' \
	--ghz '$(BENCH_BIN)/ghz' --ghz-version '$(BENCH_GHZ_VERSION)' \
	$(BENCH_ARGS)

.PHONY: bench bench-smoke bench-profile bench-floors bench-tools bench-clean

bench: $(BENCH_DEPS)
	timeout --kill-after=30 $(if $(filter 1,$(BENCH_SMOKE)),$(BENCH_SMOKE_TIMEOUT),$(BENCH_TIMEOUT)) $(BENCH_RUN)

bench-smoke: $(BENCH_DEPS)
	timeout --kill-after=30 $(BENCH_SMOKE_TIMEOUT) $(BENCH_RUN) --smoke

bench-tools: $(BENCH_GRPCIO_VENV)/.installed $(BENCH_GRPCIO_VENV)/.uvloop $(BENCH_BIN)/gobench $(BENCH_BIN)/ghz

$(BENCH_GRPCIO_VENV)/.installed:
	rm -rf '$(BENCH_GRPCIO_VENV)'
	$(PYTHON) -m venv '$(BENCH_GRPCIO_VENV)'
	'$(BENCH_GRPCIO_VENV)/bin/python' -m pip install --quiet --disable-pip-version-check \
		'grpcio==$(BENCH_GRPCIO_VERSION)'
	touch '$@'

# uvloop for the grpc.aio rows on uvloop (ours gets it from TEST_DEPS).
$(BENCH_GRPCIO_VENV)/.uvloop: $(BENCH_GRPCIO_VENV)/.installed
	'$(BENCH_GRPCIO_VENV)/bin/python' -m pip install --quiet --disable-pip-version-check uvloop
	touch '$@'

$(BENCH_BIN)/gobench: $(wildcard $(BENCH_ROOT)/bench/gobench/*.go) $(BENCH_ROOT)/go.mod $(BENCH_ROOT)/go.sum
	cd '$(BENCH_ROOT)' && go build -o '$@' ./bench/gobench

# `go install pkg@version` builds ghz with its own go.mod, outside ours.
$(BENCH_BIN)/ghz:
	mkdir -p '$(BENCH_BIN)'
	GOBIN='$(BENCH_BIN)' go install 'github.com/bojand/ghz/cmd/ghz@$(BENCH_GHZ_VERSION)'

# py-spy comes from PyPI into a throwaway venv; perf is used if installed.
$(BENCH_PROF_VENV)/.installed:
	rm -rf '$(BENCH_PROF_VENV)'
	$(PYTHON) -m venv '$(BENCH_PROF_VENV)'
	'$(BENCH_PROF_VENV)/bin/python' -m pip install --quiet --disable-pip-version-check \
		'py-spy==$(BENCH_PYSPY_VERSION)'
	touch '$@'

bench-profile: $(if $(filter $(VENV_PY),$(BENCH_OURS_PY)),install) $(BENCH_BIN)/gobench $(BENCH_PROF_VENV)/.installed
	timeout --kill-after=30 900 '$(PYTHON)' '$(BENCH_ROOT)/bench/profile.py' \
		--ours-python '$(BENCH_OURS_PY)' --gobench '$(BENCH_BIN)/gobench' \
		--py-spy '$(BENCH_PROF_VENV)/bin/py-spy' $(BENCH_PROFILE_ARGS)

bench-floors: $(if $(filter $(VENV_PY),$(BENCH_OURS_PY)),install) $(BENCH_GRPCIO_VENV)/.installed $(BENCH_BIN)/gobench $(BENCH_BIN)/ghz
	mkdir -p '$(BENCH_ROOT)/build/bench'
	timeout --kill-after=30 1500 '$(PYTHON)' '$(BENCH_ROOT)/bench/floors.py' \
		--ours-python '$(BENCH_OURS_PY)' --grpcio-python '$(BENCH_GRPCIO_VENV)/bin/python' \
		--gobench '$(BENCH_BIN)/gobench' --ghz '$(BENCH_BIN)/ghz' \
		--rounds $(or $(BENCH_REPEAT),3) --perf --json '$(BENCH_ROOT)/build/bench/floors.json'

bench-clean:
	rm -rf '$(BENCH_ROOT)/build/bench' '$(BENCH_GRPCIO_VENV)' '$(BENCH_PROF_VENV)' \
		'$(BENCH_BIN)/gobench' '$(BENCH_BIN)/ghz'
