# The two commands of the README are `make deploy` and `make test`; the rest are their parts.
SHELL := /bin/bash
ENV := . scripts/env.sh &&
INVENTORY ?= inventories/local

.PHONY: bootstrap deploy test cluster-up cluster-down cluster-destroy cluster-status lint sanity unit integration build docs

bootstrap:
	scripts/bootstrap.sh

## Deploy the whole platform: on the cluster in $KUBECONFIG when one answers, else on the bundled local cluster.
deploy:
	scripts/bootstrap.sh runtime
	scripts/deploy.sh $(INVENTORY)

## Run every test: lint, sanity, unit, then the tiers that need the local cluster (scripts/test.sh bootstraps).
test:
	scripts/test.sh

cluster-up:
	cluster/cluster.sh up
cluster-down:
	cluster/cluster.sh down
cluster-destroy:
	cluster/cluster.sh destroy
cluster-status:
	cluster/cluster.sh status

lint:
	scripts/test.sh lint
sanity:
	scripts/test.sh sanity
unit:
	scripts/test.sh unit
integration:
	scripts/test.sh integration

build: bootstrap
	$(ENV) ansible-galaxy collection build --force --output-path .cache/dist

docs: bootstrap
	$(ENV) python scripts/gen_variables_doc.py > docs/variables.md
