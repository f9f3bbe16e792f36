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
demo *ARGS: frontend
    crabglamp demo {{ARGS}}

# serve the API and dashboard on DATABASE_URL (upgrades the database first)
serve *ARGS: frontend
    crabglamp serve {{ARGS}}

# upgrade DATABASE_URL to the newest schema
migrate:
    crabglamp migrate

# export the GraphQL schema to schema.graphql (a test keeps the two equal)
schema:
    crabglamp schema --output schema.graphql

# regenerate the typed Python client in clients/python from schema.graphql (ariadne-codegen runs
# in its own .venv-codegen: it pins a graphql-core that Strawberry cannot use)
codegen:
    test -x .venv-codegen/bin/ariadne-codegen || (python3 -m venv .venv-codegen && .venv-codegen/bin/pip install -q 'ariadne-codegen==0.19.0')
    .venv-codegen/bin/ariadne-codegen --config clients/ariadne-codegen.toml

# the whole test suite: SQLite, PostgreSQL (CRABGLAMP_TEST_POSTGRES_URL) and real Chromium
test *ARGS: frontend
    pytest {{ARGS}}

# Skipped when nothing changed since the last build.
# build the dashboard and the GraphQL playground into frontend/dist: npm ci if needed,
# graphql-codegen, tsc, vite build
frontend:
    #!/usr/bin/env bash
    set -euo pipefail
    cd frontend
    if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
      echo "==> npm ci (frontend dependencies)" >&2
      npm ci --no-audit --no-fund --loglevel=error
    fi
    if [ -f dist/index.html ] && [ -z "$(find src public index.html playground.html playground-examples *.ts package-lock.json ../schema.graphql -newer dist/index.html -not -path 'src/generated/*' 2>/dev/null | head -1)" ]; then
      exit 0
    fi
    echo "==> building the dashboard (frontend/dist)" >&2
    npm run --silent build -- --logLevel warn

# ruff lint and format check
lint:
    ruff check backend tests benchmarks devsupport
    ruff format --check backend tests benchmarks devsupport

# strict mypy over the package
typecheck:
    mypy

# benchmarks of CONTRACTS.md §7.1; figures go to BENCHMARKS.md (EVENTS=10000000 for the full run)
bench *ARGS:
    python -m benchmarks.run {{ARGS}}

# precision and recall of anomaly detection on generated labelled months (--seeds N, -v, --database URL)
eval-anomalies *ARGS:
    python -m crabglamp.dev.anomaly_eval {{ARGS}}

# P4/P5: proxy overhead vs the fake upstream (1 and 2 workers), request done -> in usage (both engines)
bench-proxy *ARGS:
    python -m benchmarks.proxy_bench {{ARGS}}

# P1 at the API: GraphQL usage and GET /api/usage, in-process and on `crabglamp serve` (--events 200000: quick)
bench-api *ARGS:
    python -m benchmarks.run --only p1-api {{ARGS}}

# the proxy beside LiteLLM's (pinned, in .venv-peers) against one fake upstream; wrk from Debian's packages
bench-peers *ARGS:
    test -x .venv-peers/bin/litellm || (python3 -m venv .venv-peers && .venv-peers/bin/pip install -q 'litellm[proxy]==1.108.7')
    command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
    python -m benchmarks.peers_bench {{ARGS}}

# P4 before and after: the proxy of another checkout (--before DIR, e.g. a git worktree) and this one, in turns
bench-proxy-ab *ARGS:
    command -v wrk >/dev/null || { echo "wrk is missing: apt-get install -y wrk" >&2; exit 1; }
    python -m benchmarks.proxy_ab {{ARGS}}

# P6: first chart drawn in headless Chromium (20 keys, a month); bytes per chart vs GET /api/usage
bench-dashboard *ARGS: frontend
    python -m benchmarks.dashboard_bench {{ARGS}}
