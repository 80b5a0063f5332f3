"""The real tier (see conftest.py)."""
