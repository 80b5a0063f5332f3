"""The one error type of the Pulumi programs."""

from __future__ import annotations

import pulumi


class InfraError(pulumi.RunError):
    """A problem with the plans, the stack config or the address plan.

    A `pulumi.RunError` makes `pulumi up` print the message alone, without a Python traceback.
    """
