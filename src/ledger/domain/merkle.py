"""The commitment to the whole event log: an RFC 6962 (Certificate Transparency) Merkle tree.

Each event of the log, in the log's order, is a leaf. A leaf's data is the event's row *as
stored* (``leaf_data``), never a re-encoding of the decoded event, so an upcaster, a new
transcoding or a library upgrade that decodes differently cannot change it. The tree hash is
RFC 6962's (section 2.1; RFC 9162 section 2.1.1)::

    leaf hash  = SHA-256(0x00 || leaf data)
    node hash  = SHA-256(0x01 || left || right)
    MTH({})    = SHA-256()
    MTH(D[n])  = node(MTH(D[0:k]), MTH(D[k:n])), k the largest power of two below n

``Frontier`` computes the root of a growing log in one pass with memory logarithmic in its
length; its root of the first ``n`` leaves is the tree hash of those ``n`` (docs/adr/0019).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterable
from uuid import UUID

EMPTY_ROOT = hashlib.sha256(b"").digest()
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

_LENGTHS = struct.Struct(">QII")


def leaf_data(originator_id: UUID, originator_version: int, topic: str, state: bytes) -> bytes:
    """A stored event row as bytes: the id's 16 bytes, then the version, the topic's and the
    state's lengths (big-endian, 8, 4 and 4 bytes), the topic (UTF-8) and the state as stored.

    The database computes the same bytes (``ledger.adapters.log_order.LEAF_HASH_SQL``)."""
    encoded_topic = topic.encode("utf-8")
    return (
        originator_id.bytes
        + _LENGTHS.pack(originator_version, len(encoded_topic), len(state))
        + encoded_topic
        + state
    )


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962's hash of one leaf."""
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962's hash of an inner node."""
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


class Frontier:
    """The roots of the perfect subtrees that a log of ``size`` leaves decomposes into, largest
    first (one per set bit of ``size``): enough to extend the tree and to compute its root."""

    __slots__ = ("_stack", "size")

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (height, hash), heights decreasing
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Add the next leaf, given as its leaf hash."""
        height, node = 0, leaf
        stack = self._stack
        while stack and stack[-1][0] == height:
            node = node_hash(stack.pop()[1], node)
            height += 1
        stack.append((height, node))
        self.size += 1

    def root(self) -> bytes:
        """The tree hash of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        subtrees = iter(reversed(self._stack))
        root = next(subtrees)[1]
        for _height, node in subtrees:
            root = node_hash(node, root)
        return root


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    """The tree hash of ``leaves`` (leaf hashes), in one pass."""
    frontier = Frontier()
    for leaf in leaves:
        frontier.append(leaf)
    return frontier.root()


def reference_root(leaves: list[bytes]) -> bytes:
    """RFC 6962's recursive definition, word for word (what tests hold ``Frontier`` to)."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))
