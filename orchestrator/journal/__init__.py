"""The journal: what ran, when, by whom, and with what outcome (SQLite, append-only, verifiable).

- store.py: the `Journal` (opening, the transactions that write runs, step states, approvals, events)
- lock.py: the run lock (one run per journal; names the holder)
- read.py: step states, approvals, runs and events as the CLI and reports read them
- verify.py: tamper detection (hash chain, head, replay)
- records.py: the records, states, errors and clock they share
"""

from .lock import JournalLocked, RunLock
from .records import STATES, Approval, JournalError, StepRecord, VerifyResult, operator_name
from .store import Journal

__all__ = ["STATES", "Approval", "Journal", "JournalError", "JournalLocked", "RunLock", "StepRecord",
           "VerifyResult", "operator_name"]
