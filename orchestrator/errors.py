"""The root of fjmig's own errors.

Every error the library raises for a problem in the user's input or environment (plans, journal,
inventory, lab, git revisions) is a `FjmigError`: the CLI prints its message without a traceback
and exits 1. Anything else that escapes is a defect in fjmig.
"""

from __future__ import annotations


class FjmigError(Exception):
    """A problem the user can fix, described in its message."""
