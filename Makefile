# Entry points. See README.md.
SERVICES := bash tests/env/services.sh

.PHONY: demo test bench bench-system services-up services-down services-status services-clean cluster-up cluster-down cluster-status lint

## demo: bring the services up and show orders flowing through them
demo:
	bash tests/env/demo.sh

## test: install what is missing; on MariaDB 10.11, then 11.8 (BT_MARIADB=… for one): start the services, run every test, stop what it started
test:
	bash tests/env/run-tests.sh

## bench: drain 100,000 order transactions three times (median events/s beside the raw binlog and producer limits, CPU, RSS), a 200,000-row snapshot (rows/s, RSS); commit -> Kafka latency at 2,000 orders/s
bench:
	$(SERVICES) up
	cargo bench --locked --bench backlog
	LATENCY_SOURCE=both cargo bench --locked --bench latency

## bench-system: load on the system make demo runs: orders/s accepted and paid end to end
bench-system:
	python3 tests/env/system-load.py 4000 8

services-up:
	$(SERVICES) up

services-down:
	$(SERVICES) down

services-status:
	$(SERVICES) status

## services-clean: stop the services and delete their data
services-clean:
	$(SERVICES) clean

## cluster-up: a local three-node Kafka cluster (RF 3, min.insync.replicas 2) beside the services; its bootstrap.servers printed
cluster-up:
	bash tests/env/kafka-cluster.sh up

cluster-down:
	bash tests/env/kafka-cluster.sh down

cluster-status:
	bash tests/env/kafka-cluster.sh status

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets --locked -- -D warnings
