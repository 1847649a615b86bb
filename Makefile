# The two commands of the README. Everything else is a script they call.
.PHONY: run test deps lint bench-predict

run: deps
	scripts/run.sh

test: deps
	scripts/test.sh

deps:
	scripts/bootstrap.sh

lint: deps
	.venv/bin/ruff check . && .venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/sqlfluff lint sql plpgsql pg_cron tests/sql/helpers
	scripts/check_deploy.sh

bench-predict: deps
	bench/predict
