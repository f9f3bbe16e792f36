# CrabGlamp Usage — every job is a recipe here; CI calls these too.
# On a fresh machine use ./just (it prepares .venv first); with .venv active, plain `just` works.

set shell := ["bash", "-euo", "pipefail", "-c"]
export PATH := justfile_directory() + "/.venv/bin:" + env_var("PATH")

# lint, then the whole test suite
default: lint test

# install the package with its dev tools into .venv
install:
    python -m pip install -q -e '.[dev]'

# seed demo data into the SQLite default (crabglamp.db) and serve it on http://127.0.0.1:8000
demo *ARGS:
    crabglamp demo {{ARGS}}

# serve the API and dashboard on DATABASE_URL (upgrades the database first)
serve *ARGS:
    crabglamp serve {{ARGS}}

# upgrade DATABASE_URL to the newest schema
migrate:
    crabglamp migrate

# the whole test suite: SQLite, PostgreSQL (CRABGLAMP_TEST_POSTGRES_URL) and real Chromium
test *ARGS:
    pytest {{ARGS}}

# ruff lint and format check
lint:
    ruff check backend tests benchmarks
    ruff format --check backend tests benchmarks

# strict mypy over the package
typecheck:
    mypy

# benchmarks of DESIGN section 5; figures go to BENCHMARKS.md (EVENTS=10000000 for the full run)
bench *ARGS:
    python -m benchmarks.run {{ARGS}}
