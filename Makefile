# The two commands of the README. Both install what they need on a fresh Debian machine.
.PHONY: demo test setup lint

demo: setup
	.venv/bin/fjmig demo

test: setup
	.venv/bin/python -m pytest

setup:
	bash scripts/setup.sh

lint: setup
	.venv/bin/ruff check .
