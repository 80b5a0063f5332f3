# The two commands of the README (and the real tier alone). Each installs what it needs on a fresh
# Debian machine first.
.PHONY: demo test test-real setup real-setup lint

demo: setup
	.venv/bin/fjmig demo

test: setup real-setup
	.venv/bin/python -m pytest

# The real Pulumi engine against a loopback OpenStack (tests/real): engine, cloud, tests, cloud stopped.
test-real: setup real-setup
	.venv/bin/python -m pytest -m real tests/real

setup:
	bash scripts/setup.sh

real-setup:
	bash scripts/real-cloud/setup.sh

lint: setup
	.venv/bin/ruff check .
