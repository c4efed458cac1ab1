"""The mapper that decodes stored events for bulk readers (projections, ``ledger audit``).

Like the application's (same transcodings, compressor and cipher), except that its JSON
decoding makes a UUID it has decoded before only once (a user's id is in every event of each
of their tokens).
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from eventsourcing.persistence import (
    JSONTranscoder,
    Mapper,
    Transcoder,
    TranscodingNotRegisteredError,
    UUIDAsHex,
)


class _ReadingTranscoder(Transcoder):
    """The application's JSON transcoder, decoding the same values, except that a UUID it has
    decoded before is not made again (a user's id is in every event of each of their tokens).
    UUIDs are immutable: sharing one object is safe. At most ``max_entries`` are kept."""

    def __init__(self, transcoder: JSONTranscoder, max_entries: int = 65_536) -> None:
        self._transcoder = transcoder
        self._names = transcoder.names
        self._uuids: dict[str, UUID] = {}
        self._max_entries = max_entries
        self._decoder = json.JSONDecoder(object_hook=self._decode_obj)

    def encode(self, obj: Any) -> bytes:
        return self._transcoder.encode(obj)

    def decode(self, data: bytes) -> Any:
        return self._decoder.decode(data.decode("utf8"))

    def _decode_obj(self, d: dict[str, Any]) -> Any:
        # The library's format: a transcoded value is {"_type_": name, "_data_": data}.
        if len(d) != 2 or "_type_" not in d or "_data_" not in d:
            return d
        name, data = d["_type_"], d["_data_"]
        if name == UUIDAsHex.name:
            uuid = self._uuids.get(data)
            if uuid is None:
                if len(self._uuids) >= self._max_entries:
                    self._uuids.clear()
                uuid = self._uuids[data] = UUID(data)
            return uuid
        transcoding = self._names.get(name)
        if transcoding is None:
            msg = f"Data serialized with name {name!r} is not deserializable."
            raise TranscodingNotRegisteredError(msg)
        return transcoding.decode(data)


def reading_mapper(mapper: Mapper[Any]) -> Mapper[Any]:
    """A mapper decoding like ``mapper``, with ``_ReadingTranscoder`` for the library's own JSON
    transcoder (a subclass may decode otherwise: then ``mapper`` itself)."""
    transcoder = mapper.transcoder
    if type(transcoder) is JSONTranscoder:
        return Mapper(_ReadingTranscoder(transcoder), mapper.compressor, mapper.cipher)
    return mapper
