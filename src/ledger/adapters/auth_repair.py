"""``ledger audit repair-auth``: the auth lookup table re-derived from the events.

Reads like ``ledger audit verify``'s stream pass (``ledger.adapters.audit_verify``) and rewrites
only the rows that disagree, in one transaction holding the events-table lock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from eventsourcing.persistence import Mapper
from psycopg import sql

from ledger.adapters.audit_verify import Streams, connect, witness_problems
from ledger.adapters.credentials_table import WRITE_COLUMNS, row_values
from ledger.adapters.postgres import CREDENTIALS_TABLE, EVENTS_TABLE
from ledger.adapters.reading_mapper import reading_mapper
from ledger.domain.tamper import Problem, ProblemCode


@dataclass
class RepairReport:
    """The auth table's rows that disagreed with the events, and what was done to each."""

    rewritten: list[UUID] = field(default_factory=list)
    removed: list[UUID] = field(default_factory=list)
    kept: list[UUID] = field(default_factory=list)
    """Rows left alone because their credential's events no longer match their witnessed
    leaves: re-deriving them would copy the tampering into the auth table."""
    problems: list[Problem] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "rewritten": [str(c) for c in self.rewritten],
            "removed": [str(c) for c in self.removed],
            "kept": [str(c) for c in self.kept],
            "problems": [p.to_json() for p in self.problems],
        }


def repair_auth(url: str, mapper: Mapper[Any]) -> RepairReport:
    """Re-derive the auth table's rows that disagree with the events, in one transaction that
    holds the events-table lock (no command commits meanwhile): a row that differs is
    rewritten from the folded state (its ``last_used_at`` kept), a row without events removed,
    a missing row written. A credential whose own stream is damaged (a broken chain, or events
    that differ from their witnessed leaves) is left as it is: verify names it."""
    report = RepairReport()
    credentials = sql.Identifier(CREDENTIALS_TABLE)
    upsert = sql.SQL(
        "INSERT INTO {t} ({cols}) VALUES ({params}) ON CONFLICT (credential_id) DO UPDATE SET {set}"
    ).format(
        t=credentials,
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in WRITE_COLUMNS),
        params=sql.SQL(", ").join(sql.Placeholder() for _ in WRITE_COLUMNS),
        set=sql.SQL(", ").join(
            sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in WRITE_COLUMNS[1:]
        ),
    )
    delete = sql.SQL("DELETE FROM {t} WHERE credential_id = %s").format(t=credentials)
    with connect(url, read_only=False) as conn:
        conn.execute(
            sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(sql.Identifier(EVENTS_TABLE))
        )
        tampered = {p.stream_id for p in witness_problems(conn)}
        streams = Streams(conn, reading_mapper(mapper), keep_folded=True)
        found = [
            p for p in streams.check(lambda _n: None) if p.problem is ProblemCode.AUTH_ROW_MISMATCH
        ]
        for problem in found:
            credential_id = problem.credential_id
            assert credential_id is not None
            report.problems.append(problem)
            folded = streams.folded.get(credential_id)
            if credential_id in tampered:
                report.kept.append(credential_id)
            elif folded is None:
                conn.execute(delete, (credential_id,))
                report.removed.append(credential_id)
            else:
                conn.execute(upsert, row_values(folded))
                report.rewritten.append(credential_id)
        conn.commit()
    return report
