# The two commands a new user needs (see README):
#   make demo   set up .venv and run the pipeline on embedded adapters, no servers
#   make test   set up, start Kafka/Cassandra/Redis/ZooKeeper on loopback, run every test, stop them
.PHONY: demo test services-start services-stop bench proto lint

demo:
	@bash infra/bootstrap.sh
	.venv/bin/vahini demo

test:
	@bash infra/test.sh

services-start:
	@bash infra/services.sh start

services-stop:
	@bash infra/services.sh stop

bench:
	@bash infra/bootstrap.sh
	.venv/bin/python -m benchmarks.ingest
	.venv/bin/python -m benchmarks.retrieve

proto:
	@bash infra/bootstrap.sh
	.venv/bin/python -m serving.api.generate
