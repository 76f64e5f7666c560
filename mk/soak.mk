# mk/soak.mk -- `make soak`: a long run that only a leak or a hang would spoil.
#
# Included by the main Makefile, which provides VENV_PY and `install`.
# bench/soak.py: 1,000,000 unary calls from 8 threads, with a thread churning
# streams and one churning channels, client and server in two processes;
# resident memory and thread counts of both at the start, after 100,000 calls
# and at the end. Several minutes on 2 cores. Knobs: SOAK_CALLS, SOAK_THREADS.

SOAK_CALLS ?= 1000000
SOAK_THREADS ?= 8

.PHONY: soak
soak: install
	$(VENV_PY) bench/soak.py --calls $(SOAK_CALLS) --threads $(SOAK_THREADS) \
		--json build/soak/results.json
