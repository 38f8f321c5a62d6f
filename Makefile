# Thin wrappers over scripts/ and cargo. `make run` and `make test` are all a fresh machine needs.
.PHONY: run test fmt lint openapi bench db db-stop test-db e2e help

help:
	@echo "make run      start Easel on http://127.0.0.1:8080 (local PostgreSQL under .data/ unless DATABASE_URL is set)"
	@echo "make test     every check: fmt, clippy, tests, OpenAPI drift, schemathesis, web app unit and browser tests"
	@echo "make fmt      format the code"
	@echo "make lint     clippy with warnings as errors"
	@echo "make openapi  regenerate openapi/openapi.json from the code, and the web app's types from it"
	@echo "make e2e      only the browser tests (needs make test-db)"
	@echo "make bench    load benchmarks, reported as ratios against a baseline"
	@echo "make db       start the local development PostgreSQL only; make db-stop stops it"
	@echo "make test-db  start the test PostgreSQL cluster, for running cargo test by hand"

run:
	scripts/run.sh

test:
	scripts/test.sh

fmt:
	cargo fmt --all

lint:
	cargo clippy --workspace --all-targets -- -D warnings

openapi:
	cargo run --quiet --bin easel -- openapi --out openapi/openapi.json
	scripts/frontend.sh build >/dev/null
	cd frontend && npx openapi-typescript ../openapi/openapi.json -o src/api/schema.d.ts

bench:
	bench/credits/run.sh
	bench/generation/run.sh
	bench/events/run.sh
	bench/gallery/run.sh
	bench/export/run.sh

db:
	scripts/pg.sh start .data/postgres $${EASEL_PG_PORT:-54320} durable
	scripts/pg.sh createdb $${EASEL_PG_PORT:-54320} easel

db-stop:
	scripts/pg.sh stop .data/postgres

e2e:
	scripts/e2e.sh $${EASEL_TEST_PG_PORT:-54330}

test-db:
	scripts/pg.sh start target/pg $${EASEL_TEST_PG_PORT:-54330} fast
	@echo "export EASEL_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:$${EASEL_TEST_PG_PORT:-54330}/postgres"
