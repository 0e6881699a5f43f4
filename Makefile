# headstart: `make up` runs the platform's main job, `make test` runs the whole suite.
# Both create .venv when it is missing and install everything the project needs into it.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install kernelspec proxy fashion-mnist up demo test lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml kernels/engine/_optimizers.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,pretrained]"
	touch $(STAMP)

install: $(STAMP)

# The `headstart` kernel (kernels/kernelspec/), in the environment that users' servers run from.
KERNELSPEC := $(VENV)/share/jupyter/kernels/headstart/kernel.json

$(KERNELSPEC): kernels/kernelspec/kernel.json | $(STAMP)
	$(BIN)/python -c "from headstart.kernels.kernelspec import install; install()"

kernelspec: $(KERNELSPEC)

# The hub's one-machine platform (hub_config/): the catalog service, users' servers, the proxy.
HOME_DIR := var
PROXY := configurable-http-proxy
SHARED_PASSWORD := $(HOME_DIR)/hub/shared-password

proxy:
	@command -v $(PROXY) >/dev/null || npm install -g $(PROXY)

# Fashion-MNIST, the demo's real data, is Debian's package: installed here when this runs as root with
# apt; otherwise a notice, and the demo says which data it uses instead. Never fails `make up`.
FASHION_MNIST := dataset-fashion-mnist

fashion-mnist:
	@if dpkg-query -W -f '$${Status}' $(FASHION_MNIST) 2>/dev/null | grep -q 'ok installed'; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FASHION_MNIST) >/dev/null 2>&1 \
	  || { apt-get update -qq >/dev/null 2>&1 \
	       && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(FASHION_MNIST) >/dev/null 2>&1; } \
	  || echo "headstart: could not install $(FASHION_MNIST) with apt-get; the demo uses other data"; \
	else \
	  echo "headstart: $(FASHION_MNIST) is not installed (as root: apt-get install $(FASHION_MNIST));" \
	    "the demo uses other data"; \
	fi

# Seeded once: the demo's datasets, trainings and leaderboards, in the catalog the service opens.
$(HOME_DIR)/.demo-seeded: | $(STAMP) fashion-mnist
	$(BIN)/headstart --home $(HOME_DIR) --user demo demo
	touch $@

$(SHARED_PASSWORD):
	mkdir -p $(dir $@)
	umask 077 && $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(12))" > $@

up: install kernelspec proxy fashion-mnist $(HOME_DIR)/.demo-seeded $(SHARED_PASSWORD)
	@echo "headstart: sign in at http://127.0.0.1:8000/ with any user name and the shared password"
	@echo "  $$(cat $(SHARED_PASSWORD))   (kept in $(SHARED_PASSWORD); Ctrl-C stops the hub)"
	$(BIN)/jupyterhub -f hub_config/jupyterhub_config.py

demo: up

test: install
	$(BIN)/python -m pytest

# mypy cannot follow setuptools' package-dir mapping (kernels/ is headstart.kernels), so it checks
# a tree of links that spells the import names out.
TYPECHECK := build/typecheck/headstart

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	mkdir -p $(TYPECHECK)
	ln -sfn ../../../kernels $(TYPECHECK)/kernels
	ln -sfn ../../../extension $(TYPECHECK)/extension
	ln -sfn ../../../widgets $(TYPECHECK)/widgets
	ln -sf ../../../headstart/__init__.py $(TYPECHECK)/__init__.py
	$(BIN)/mypy $(TYPECHECK)/kernels $(TYPECHECK)/extension $(TYPECHECK)/widgets

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: install
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/retrain.py

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
