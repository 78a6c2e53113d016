# The two commands a new user needs (README.md, "Two commands"):
#   make demo   set up .venv and run the pipeline on embedded adapters, no servers
#   make test   set up, start Kafka/Cassandra/Redis/ZooKeeper on loopback, run every test, stop them
#   make test-cluster  the same for the fault tests on three brokers and three Cassandra nodes
.PHONY: demo test test-cluster cluster-start cluster-stop services-start services-stop bench bench-model-proxy bench-training-set proto lint

demo:
	@bash infra/bootstrap.sh
	.venv/bin/vahini demo

test:
	@bash infra/test.sh

test-cluster:
	@bash infra/test-cluster.sh

cluster-start:
	@bash infra/cluster.sh start

cluster-stop:
	@bash infra/cluster.sh stop

services-start:
	@bash infra/services.sh start

services-stop:
	@bash infra/services.sh stop

bench:
	@bash infra/bootstrap.sh
	.venv/bin/python -m benchmarks.ingest
	.venv/bin/python -m benchmarks.retrieve

# Feast is a heavy dependency used only as a baseline: it gets a venv of its own.
.venv-bench/.installed: pyproject.toml clients/python/pyproject.toml
	@test -x .venv-bench/bin/python || python3 -m venv .venv-bench
	.venv-bench/bin/pip install -q -e '.[dev,bench]' -e 'clients/python[pandas]' && touch .venv-bench/.installed

bench-model-proxy: .venv-bench/.installed
	.venv-bench/bin/python -m benchmarks.model_proxy

bench-training-set: .venv-bench/.installed
	.venv-bench/bin/python -m benchmarks.training_set

# Bugs a linter finds without running anything (pyproject.toml [tool.ruff]), and the shared
# core's types ([tool.mypy]); .ci/run runs it first.
lint:
	@bash infra/bootstrap.sh
	.venv/bin/ruff check vahini streams serving offline console schemas tests benchmarks clients/python
	.venv/bin/mypy

proto:
	@bash infra/bootstrap.sh
	.venv/bin/python -m serving.api.generate
