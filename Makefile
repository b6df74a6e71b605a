# sync-async-bench. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUBS := protos/reaction_pb2.py
PYTEST_ARGS ?=
# RUNTIME=compose: up, down and bench run the stack in containers (compose/compose.mk, compose/README.md).
RUNTIME ?= native
ifeq ($(filter $(RUNTIME),native compose),)
$(error RUNTIME must be native or compose, got '$(RUNTIME)')
endif

.PHONY: help setup doctor venv stubs provision capacity soak bench bench-replicas bench-quick profile test test-unit lint up down clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

doctor: ## check the prerequisites (Python, Java, Maven, Go, Prometheus)
	@$(PYTHON) -m harness.doctor

$(STAMP): pyproject.toml
	@$(PYTHON) -m harness.doctor --python-only
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==25.3
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

venv: $(STAMP)

$(STUBS): protos/reaction.proto $(STAMP)
	PATH=$(abspath $(BIN)):$$PATH $(BIN)/python -m grpc_tools.protoc -I. --python_out=. \
		--grpc_python_out=. --mypy_out=. --mypy_grpc_out=. protos/reaction.proto

stubs: $(STUBS)

setup: ## provision everything: venv, stubs, Kafka jars, Toxiproxy, Jaeger, Prometheus, HAProxy, wrk, Chromium (idempotent, cached)
	@$(PYTHON) -m harness.doctor --fix-hint
	@$(MAKE) --no-print-directory venv stubs
	$(BIN)/bench provision

ifeq ($(RUNTIME),compose)
up: compose-up
down: compose-down
bench: compose-bench
bench-quick:
	@$(MAKE) --no-print-directory bench BENCH_ARGS="--quick $(BENCH_ARGS)"
else
up: setup ## start the stack in the background (PIPELINE=sync|sync-resilient|async)
	$(BIN)/bench up $(if $(PIPELINE),--pipeline $(PIPELINE))

down: ## stop everything `make up` started
	@if [ -x $(BIN)/bench ]; then $(BIN)/bench down; fi

# The default matrix, every cell at 0.4 of its scenario's length, one repetition: about 37 s a cell
# on the 2-core VM (run 20261203-071851; 24 s of load, the rest switching pipelines, draining,
# joining the ledger and reading traces), about 17 minutes for the 27 cells (half length: 22, run
# 20261130-053911).
# Intervals then come from time blocks within each cell. REPEAT=N gives Student's t intervals over
# the repetitions (that many times as long; wide below 3 or so); TIME_SCALE=1 plays full length.
REPEAT ?= 1
TIME_SCALE ?= 0.4
# The scenarios' rates are relative to this machine's capacity: the first `make bench` measures it
# (a quick search, a few minutes); later ones reuse it until `make capacity` measures again.
# $(call run_and_report,BENCH RUN ARGUMENTS,REPORT ARGUMENTS): the report is written even when a
# hypothesis failed; the exit code is the run's.
define run_and_report
	$(BIN)/bench capacity --pipeline all --quick --if-missing
	@rc=0; $(BIN)/bench run $(1) $(BENCH_ARGS) || rc=$$?; \
	if [ -e runs/latest/run.json ]; then $(BIN)/bench report runs/latest $(2); \
	echo "report: $$(readlink -f runs/latest)/report.html (and report.md)"; fi; exit $$rc
endef

bench: setup ## run the default matrix (all pipelines x all scenarios; REPEAT=N, TIME_SCALE=F) and write the report
	$(call run_and_report,--pipeline all --scenario all --repeat $(REPEAT) --time-scale $(TIME_SCALE),--screenshot)

capacity: setup ## measure every pipeline's capacity, the ceilings and what tracing costs (full search), for the loads
	$(BIN)/bench capacity --pipeline all

# The soak (chaos/scenarios/soak/, never in the default matrix): 30 min at 0.5 x this machine's sync
# capacity per pipeline, at full length (PIPELINE=all: 3 cells, about 95 min). The report shows
# every process's memory per cell and its RSS over time (harness/limits/memory.yaml).
soak: setup ## 30 min at half the sync capacity per pipeline (PIPELINE=P|all): every process's memory in the report
	$(call run_and_report,--pipeline $(or $(PIPELINE),all) --scenario soak,)

# The replicated topology (chaos/scenarios/replicas/, never in the default matrix): two notification
# replicas, sync behind HAProxy and, as the control, balanced client-side; async in one consumer
# group; one replica killed mid-load. Its report judges "no extra network hop due to a load
# balancer". Sync and async, 8 cells per repetition, about 6 minutes at the default TIME_SCALE.
bench-replicas: setup ## the replicated topology's scenarios (2 replicas; REPEAT=N, TIME_SCALE=F) and their report
	$(call run_and_report,--replicas 2 --pipeline sync async --scenario replicas \
		--repeat $(REPEAT) --time-scale $(TIME_SCALE),)

bench-quick: setup ## a shorter matrix (30 s per cell) for CI, and its report
	@$(MAKE) --no-print-directory bench BENCH_ARGS="--quick $(BENCH_ARGS)"

# Where each service's CPU goes (harness/capacity/service_profile.py): a stack of its own, traced as
# the runs are unless TRACING says otherwise, wrk on the POST and py-spy on the three services for
# 20 s; the table, and the raw stacks in runs/profile-<pipeline>/. The stack goes down at the end,
# on an error or on Ctrl-C.
profile: setup ## where each service's CPU goes under wrk, by py-spy (PIPELINE=sync|sync-resilient|async, TRACING=off|RATIO)
	$(BIN)/bench up --pipeline $(or $(PIPELINE),sync) \
		--tracing $(or $(TRACING),$$($(BIN)/python -c 'from harness.measured_tracing import load; print(load().sample)'))
	@trap '$(BIN)/bench down' EXIT; $(BIN)/python -m harness.capacity.service_profile --out runs/profile-$(or $(PIPELINE),sync)
endif

lint: venv stubs ## ruff and mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy facts harness targets loadtests chaos dashboards compose tests

test-unit: setup ## the tests that need no running stack
	$(BIN)/pytest -m 'not stack' $(PYTEST_ARGS)

test: setup lint ## provision, lint, and run the whole suite against the real stack
	$(BIN)/pytest $(PYTEST_ARGS)

clean: down ## remove the venv, generated stubs and runs (the download cache stays)
	rm -rf $(VENV) protos/*_pb2*.py protos/*_pb2*.pyi runs .bench

include compose/compose.mk
