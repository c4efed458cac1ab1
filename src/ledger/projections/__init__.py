"""Read models built one way from the events: the auditors' trail and the credential states.

- ``AuditTrail`` (``ledger_audit``): one row per credential or membership event;
- ``Credentials`` (``ledger_credentials_view``): every credential's current state;
- ``Projections``: the runner (batched catch-up, live following, rebuild, status);
- ``AuditQueries``: ``history``, ``events`` and ``valid_at`` over them.

No stored event stops them: what a projection cannot take as it is, it projects in a safe form
or skips, and records in ``ledger_projection_errors`` (``ledger.projections.problems``).

The auth lookup table is not one of them: it must be exact the moment a command returns, so
the recorder writes it in the event-insert transaction (``ledger.adapters.credentials_table``,
docs/adr/0005). See docs/adr/0009 for how the projections run.
"""

from ledger.application.audit import AuditEvent, AuditPage, CredentialHistory, CredentialState
from ledger.projections.audit_trail import EVENT_TYPES, AuditTrail
from ledger.projections.credentials import Credentials
from ledger.projections.queries import AuditQueries, states_as_of
from ledger.projections.runner import NAMES, ProjectionError, Projections, ProjectionStatus

__all__ = [
    "EVENT_TYPES",
    "NAMES",
    "AuditEvent",
    "AuditPage",
    "AuditQueries",
    "AuditTrail",
    "CredentialHistory",
    "CredentialState",
    "Credentials",
    "ProjectionError",
    "ProjectionStatus",
    "Projections",
    "states_as_of",
]
