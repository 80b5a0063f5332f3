"""fjmig: the Digital Fujian migration orchestrator (plans, policy, graph, schedule, execution)."""

__version__ = "0.1.0"
