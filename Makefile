# The two commands of the README (demo, test), and the tiers a contributor runs on their own.
# Each installs what it needs on a fresh Debian machine first (scripts/setup.sh).
.PHONY: demo test test-fast setup lint

demo: setup
	.venv/bin/fjmig demo

# The full suite, every tier (what CI runs: .ci/run calls `make test`).
test: setup
	.venv/bin/python -m pytest

# The fast tier, before every commit: no lab, no real cloud, no slow tools (tests/unit).
test-fast: setup
	.venv/bin/python -m pytest tests/unit --durations=10

setup:
	bash scripts/setup.sh

lint: setup
	.venv/bin/ruff check .
