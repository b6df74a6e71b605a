# compose/: the same stack in containers, included by the Makefile. With RUNTIME=compose the
# Makefile's up, down and bench targets come here. Needs Docker with Compose v2 (`docker compose`)
# and nothing else on the host: no venv, Java, Go or Prometheus. See compose/README.md.
#
#   KAFKA=single|cluster   one broker (default) or the three-broker profile
#   PIPELINE=...           the reaction service's pipeline for `up` (default async)
#   LOCUST_WORKERS=N       Locust workers for `up` (default 2)
#   DOCKER_COMPOSE=...     the compose command (default `docker compose`; e.g. docker-compose)

KAFKA ?= single
LOCUST_WORKERS ?= 2
DOCKER_COMPOSE ?= docker compose
COMPOSE_ENV := compose/generated/compose.env
COMPOSE_BASE := $(DOCKER_COMPOSE) --env-file $(COMPOSE_ENV) -f compose/docker-compose.yml
COMPOSE_CLUSTER := -f compose/docker-compose.cluster.yml --profile cluster
ifeq ($(KAFKA),single)
COMPOSE := $(COMPOSE_BASE)
COMPOSE_SCENARIOS := all
else ifeq ($(KAFKA),cluster)
COMPOSE := $(COMPOSE_BASE) $(COMPOSE_CLUSTER)
# The shipped scenarios plus those written for a real cluster (compose/scenarios/).
COMPOSE_SCENARIOS := $(sort $(basename $(notdir $(wildcard chaos/scenarios/*.yaml)))) $(sort $(wildcard compose/scenarios/*.yaml))
else
$(error KAFKA must be single or cluster, got '$(KAFKA)')
endif
# Compose interpolates the whole file for every command, also to remove or check it: those get a
# placeholder admin password, which no container ever receives (`up` requires the real one).
COMPOSE_NO_PASSWORD := GRAFANA_ADMIN_PASSWORD=$${GRAFANA_ADMIN_PASSWORD:-unused-placeholder}
compose_env = $(shell sed -n 's/^$(1)=//p' $(COMPOSE_ENV))

.PHONY: compose-generate compose-config compose-up compose-down compose-bench

compose-generate: venv ## rewrite compose/generated/ from facts/topology.py (commit the result)
	$(BIN)/python -m compose.generate

compose-config: ## validate the compose files with `docker compose config` (needs no engine)
	$(COMPOSE_NO_PASSWORD) $(COMPOSE_BASE) --profile bench config --quiet
	$(COMPOSE_NO_PASSWORD) $(COMPOSE_BASE) $(COMPOSE_CLUSTER) --profile bench config --quiet

compose-up: ## containers: build and start the stack, Grafana and Locust (KAFKA=cluster, PIPELINE, LOCUST_WORKERS)
	PIPELINE=$(or $(PIPELINE),async) $(COMPOSE) up --build --detach --wait --scale locust-worker=$(LOCUST_WORKERS)
	@echo "Grafana    http://127.0.0.1:$(call compose_env,GRAFANA_PORT)  (anonymous viewer; admin/\$$GRAFANA_ADMIN_PASSWORD)"
	@echo "Locust UI  http://127.0.0.1:$(call compose_env,LOCUST_WEB_PORT)  ($(LOCUST_WORKERS) workers)"
	@echo "Jaeger UI  http://127.0.0.1:$(call compose_env,JAEGER_QUERY_HTTP_PORT)  (traces; also Grafana's Jaeger data source)"
	@echo "stop with  make down RUNTIME=compose"

compose-down: ## containers: stop and remove every compose container and volume (all profiles)
	$(COMPOSE_NO_PASSWORD) $(COMPOSE_BASE) $(COMPOSE_CLUSTER) --profile bench down --volumes --remove-orphans

# `bench run` inside the compose network (service `bench`), then its report; the stack stays up
# so that Grafana shows the run. The run folder is handed back to the owner of runs/.
compose-bench: ## containers: the default matrix (KAFKA=cluster adds compose/scenarios/*.yaml) and the report
	$(COMPOSE) up --build --detach --wait reaction grafana
	$(COMPOSE) --profile bench run --rm --use-aliases bench sh -c '\
		rc=0; bench run --pipeline all --scenario $(COMPOSE_SCENARIOS) $(BENCH_ARGS) || rc=$$?; \
		if [ -e runs/latest/run.json ]; then bench report runs/latest; fi; \
		chown -R "$$(stat -c %u:%g runs)" runs; exit $$rc'
	@echo "Grafana http://127.0.0.1:$(call compose_env,GRAFANA_PORT) shows the run; stop with make down RUNTIME=compose"
