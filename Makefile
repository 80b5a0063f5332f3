# The two commands of the README (demo, test), and the tiers a contributor runs on their own.
# Each installs what it needs on a fresh Debian machine first (scripts/setup.sh; the real tier's
# engine and cloud packages: scripts/real-cloud/setup.sh).
.PHONY: demo test test-fast test-real setup real-setup lint

demo: setup
	.venv/bin/fjmig demo

# The full suite, every tier (what CI runs: .ci/run calls `make test`).
test: setup real-setup
	.venv/bin/python -m pytest

# The real Pulumi engine against a loopback OpenStack (tests/real): engine, cloud, tests, cloud stopped.
test-real: setup real-setup
	.venv/bin/python -m pytest tests/real

# The fast tier, before every commit: no lab, no real cloud, no slow tools (tests/unit), on every core.
test-fast: setup
	.venv/bin/python -m pytest tests/unit -n auto --durations=10

setup:
	bash scripts/setup.sh

real-setup:
	bash scripts/real-cloud/setup.sh

lint: setup
	.venv/bin/ruff check .
