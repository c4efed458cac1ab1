"""The log's commitment: RFC 6962's Merkle tree hash, computed in one pass."""

from __future__ import annotations

import hashlib
from uuid import UUID

from hypothesis import given
from hypothesis import strategies as st

from ledger.domain.merkle import (
    EMPTY_ROOT,
    Frontier,
    leaf_data,
    leaf_hash,
    merkle_root,
    node_hash,
    reference_root,
)

ID = UUID("11111111-2222-3333-4444-555555555555")


def leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_the_empty_log_hashes_to_the_hash_of_nothing() -> None:
    assert merkle_root([]) == EMPTY_ROOT == hashlib.sha256().digest()


def test_leaves_and_nodes_are_domain_separated() -> None:
    assert leaf_hash(b"") == hashlib.sha256(b"\x00").digest()
    assert node_hash(b"a", b"b") == hashlib.sha256(b"\x01ab").digest()


def test_a_three_leaf_tree_is_rfc_6962s() -> None:
    a, b, c = leaves(3)
    assert merkle_root([a, b, c]) == node_hash(node_hash(a, b), c)


def test_every_prefix_root_matches_the_recursive_definition() -> None:
    all_leaves = leaves(70)
    frontier = Frontier()
    for n, leaf in enumerate(all_leaves, start=1):
        frontier.append(leaf)
        assert frontier.size == n
        assert frontier.root() == reference_root(all_leaves[:n])


def test_leaf_data_is_pinned() -> None:
    """What every witnessed leaf and every checkpoint depends on."""
    data = leaf_data(ID, 3, "a:B", b"{}")
    assert data == ID.bytes + bytes.fromhex("00000000000000030000000300000002") + b"a:B{}"


Row = tuple[UUID, int, str, bytes]
rows = st.lists(
    st.tuples(st.uuids(), st.integers(1, 2**40), st.text(max_size=20), st.binary(max_size=40)),
    min_size=2,
    max_size=40,
    unique_by=lambda row: row[0],
)


def root_of(log: list[Row]) -> bytes:
    return merkle_root(leaf_hash(leaf_data(*row)) for row in log)


@st.composite
def log_and_alteration(draw: st.DrawFn) -> tuple[list[Row], list[Row]]:
    log = draw(rows)
    altered = list(log)
    kind = draw(st.sampled_from(["edit", "delete", "insert", "swap", "truncate"]))
    i = draw(st.integers(0, len(log) - 1))
    if kind == "edit":
        oid, version, topic, state = log[i]
        field = draw(st.integers(0, 3))
        if field == 0:
            oid = draw(st.uuids().filter(lambda u: u != log[i][0]))
        elif field == 1:
            version = draw(st.integers(1, 2**40).filter(lambda v: v != log[i][1]))
        elif field == 2:
            topic = draw(st.text(max_size=20).filter(lambda t: t != log[i][2]))
        else:
            state = draw(st.binary(max_size=40).filter(lambda s: s != log[i][3]))
        altered[i] = (oid, version, topic, state)
    elif kind == "delete":
        del altered[i]
    elif kind == "insert":
        altered.insert(i, draw(rows)[0])
    elif kind == "swap":
        j = draw(st.integers(0, len(log) - 1).filter(lambda j: j != i))
        altered[i], altered[j] = altered[j], altered[i]
    else:
        altered = altered[:i]
    return log, altered


@given(log_and_alteration())
def test_any_one_alteration_of_a_log_changes_its_root(case: tuple[list[Row], list[Row]]) -> None:
    log, altered = case
    assert root_of(altered) != root_of(log)
