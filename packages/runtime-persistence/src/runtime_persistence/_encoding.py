"""How the run store encodes events and checkpoints in their rows (schema revisions 0003 and 0004).

A run's conversation reaches the store several times: each model reply and tool result in an event
(``model.responded``, ``tool.finished``/``tool.failed``), again in the turn's checkpoint delta, and again
in every snapshot. The run log is the source of truth, so the text is stored there, once:

- **Events.** The columns hold the envelope (``id``, ``type``, ``ts``, ``turn``, ``agent_id``,
  ``tool_call_id``, ``v``); the document holds the payload only, without its ``type`` (the column) and
  without fields at their default values (validation puts them back). ``id`` is ``NULL`` when it is the
  id the agent loop gives every event, ``<run_id>.<seq>`` (`Event.id_for`). ``ts`` is stored in UTC;
  ``ts_offset`` keeps the UTC offset (seconds) of a timestamp written in another zone, so that it reads
  back exactly as it was written.
- **Checkpoints.** The columns hold the row's envelope (``kind``, ``turn``, ``parent_turn``, ``status``,
  ``created_at``); the document holds the delta (or the snapshot's state without its ``turn``), where a
  message that an event of the same run reproduces exactly is stored as that event's ``seq`` (a JSON
  number) instead of a copy. A reference always resolves: it names an event committed before or in the
  same transaction as the checkpoint, and events are deleted only with their run. A snapshot is then a
  list of numbers, not a copy of the conversation.
- **Compression.** A document of `COMPRESS_FROM` characters or more is stored zlib-compressed in
  ``data_zlib`` (``data`` is then ``NULL``) when that makes it at least an eighth smaller; a shorter one
  is stored as JSON text in ``data``. So the large texts (model replies, tool results, the truncated view
  of a spooled output) are compressed, and the small documents that most events are stay readable with
  SQL (``data::jsonb`` on PostgreSQL).
- **Spool references.** The spool entries a document names (``db://spool/<sha256>``) are not searched for in
  the documents, which may be compressed: the store writes a ``spool_references`` row per entry and run
  in the same transaction (revision 0004), and retention reads those.

Payloads whose type holds a union of models are stored with their default values: there a default may be
what tells the members apart (no payload type has one today; `omits_defaults` decides per type).
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any, Final, Union

from isal import isal_zlib
from pydantic import BaseModel

from runtime_core.checkpoints import Checkpoint, CheckpointSnapshot, CheckpointState, TurnDelta
from runtime_core.events import (
    Event,
    EventPayload,
    EventType,
    ModelRespondedPayload,
    ToolFailedPayload,
    ToolFinishedPayload,
)
from runtime_core.messages import AssistantMessage, Message, ToolResultMessage
from runtime_persistence.schema import as_utc
from runtime_persistence.spool import spool_hashes

__all__ = [
    "COMPRESS_FROM",
    "EVENT_COLUMNS",
    "MESSAGE_EVENT_TYPES",
    "MessageIndex",
    "StoredDelta",
    "StoredState",
    "checkpoint_document",
    "decode_events",
    "event_columns",
    "event_place",
    "message_of",
    "omits_defaults",
    "pack",
    "payload_document",
    "read_payload",
    "resolve_messages",
    "sqlite_timestamp",
    "stored_references",
    "timestamp_offset",
    "unpack",
]

COMPRESS_FROM: Final = 512
"""Documents of at least this many characters are compressed when that pays."""
# ISA-L's level 1 (`isal_zlib`: the zlib format, so any zlib reads the column): for a 1 KB text it is ~3x
# faster than zlib's fastest level at the same size, and decompresses ~1.4x faster.
_LEVEL: Final = 1

MESSAGE_EVENT_TYPES: Final = (EventType.MODEL_RESPONDED, EventType.TOOL_FINISHED, EventType.TOOL_FAILED)
"""The events that carry a conversation message (`message_of`), which checkpoints may reference."""


def pack(document: str) -> tuple[str | None, bytes | None]:
    """Return the ``(data, data_zlib)`` column values of a JSON document (see the module documentation)."""
    if len(document) < COMPRESS_FROM:
        return document, None
    raw = document.encode()
    packed = isal_zlib.compress(raw, _LEVEL)
    if len(packed) > len(raw) - len(raw) // 8:
        return document, None
    return None, packed


def unpack(data: str | None, data_zlib: bytes | None) -> str | bytes:
    """Return the JSON document stored as ``(data, data_zlib)``."""
    if data is not None:
        return data
    assert data_zlib is not None  # a row holds its document in one of the two columns
    return isal_zlib.decompress(data_zlib)


# -- payloads -------------------------------------------------------------------------------------------


def _has_model_union(annotation: Any, seen: set[type[BaseModel]]) -> bool:
    """Whether `annotation` reaches a union with a model among several members (``X | None`` is not one)."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin is Annotated:
        return _has_model_union(arguments[0], seen)
    if origin is Union or origin is types.UnionType:
        members = [member for member in arguments if member is not type(None)]
        if len(members) > 1 and any(isinstance(m, type) and issubclass(m, BaseModel) for m in members):
            return True
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return False
        seen.add(annotation)
        return any(_has_model_union(field.annotation, seen) for field in annotation.model_fields.values())
    return any(_has_model_union(argument, seen) for argument in arguments)


def omits_defaults(model: type[BaseModel], *, besides: frozenset[str] = frozenset()) -> bool:
    """Whether `model` (without the fields `besides`) may be stored without its default values.

    It may unless a union of models is reachable from its fields: validation picks a union's member by the
    fields present, and a field left out because it held its default may be what told the members apart.
    """
    seen: set[type[BaseModel]] = set()
    return not any(
        _has_model_union(field.annotation, seen) for name, field in model.model_fields.items() if name not in besides
    )


_PAYLOADS: Final[dict[str, type[BaseModel]]] = {
    model.model_fields["type"].default: model for model in typing.get_args(typing.get_args(EventPayload)[0])
}
_OMIT_DEFAULTS: Final = {event_type: omits_defaults(model) for event_type, model in _PAYLOADS.items()}


def payload_document(payload: EventPayload) -> str:
    """The JSON document of an event's payload: without ``type`` and, where that is safe, without defaults."""
    if _OMIT_DEFAULTS[payload.type]:
        return payload.model_dump_json(exclude_defaults=True)  # ``type`` is a default too
    return payload.model_dump_json(exclude={"type"})


def read_payload(event_type: str, document: str | bytes) -> EventPayload:
    """Validate the payload document of an event of `event_type`."""
    # What `model_validate_json` does, without its Python frame (this runs for every event read). The
    # validator is looked up on each call: a model's is replaced if it is ever rebuilt.
    payload: EventPayload = _PAYLOADS[event_type].__pydantic_validator__.validate_json(document)
    return payload


# -- events ---------------------------------------------------------------------------------------------


def event_place(event_id: str) -> tuple[str, int] | None:
    """The ``(run_id, seq)`` whose implicit id `event_id` is, if it has the form ``<run_id>.<seq>``."""
    run_id, dot, seq = event_id.rpartition(".")
    if not (dot and run_id and seq.isascii() and seq.isdigit()) or seq[0] == "0":
        return None
    return run_id, int(seq)


def timestamp_offset(ts: datetime) -> int | None:
    """The ``ts_offset`` of an event timestamp: its UTC offset in seconds, ``None`` for UTC."""
    offset = ts.utcoffset()
    return None if not offset else offset // timedelta(seconds=1)


def event_columns(event: Event, spooled: set[str]) -> dict[str, Any]:
    """The column values of an event's row (the implicit id and UTC offset as ``None``).

    The hashes of the spool entries its payload names are added to `spooled` (one ``spool_references`` row
    each, see the module documentation).
    """
    payload = event.payload
    document = payload_document(payload)
    spooled.update(spool_hashes(document))
    data, data_zlib = pack(document)
    return {
        "run_id": event.run_id,
        "seq": event.seq,
        "id": None if event.id == Event.id_for(event.run_id, event.seq) else event.id,
        "type": payload.type,  # the event's type (a plain string: an enum's value costs a descriptor call)
        "turn": event.turn,
        "ts": event.ts,
        "ts_offset": timestamp_offset(event.ts),
        "agent_id": event.agent_id,
        "tool_call_id": event.tool_call_id,
        "v": event.v,
        "data": data,
        "data_zlib": data_zlib,
    }


def decode_events(run_id: str, rows: Iterable[Sequence[Any]], timestamp: Callable[[Any], datetime]) -> list[Event]:
    """Rebuild events of `run_id` from their rows' `EVENT_COLUMNS` (`timestamp` makes ``ts`` aware UTC).

    The rows were validated when they were written: each event is rebuilt as the loop builds the ones it
    records (`Event.recorded`), and only its payload is validated. The events of one step share their time,
    which is converted once.
    """
    events: list[Event] = []
    stored_before: Any = None
    utc = datetime.min
    for seq, event_id, event_type, turn, stored_ts, offset, agent_id, tool_call_id, v, data, data_zlib in rows:
        if stored_ts != stored_before:
            stored_before, utc = stored_ts, timestamp(stored_ts)
        ts = utc if offset is None else utc.astimezone(timezone(timedelta(seconds=offset)))
        payload = read_payload(event_type, unpack(data, data_zlib))
        event = Event.recorded(
            payload, run_id=run_id, seq=seq, ts=ts, agent_id=agent_id, turn=turn, tool_call_id=tool_call_id
        )
        if event_id is not None or v != 1:
            event = event.model_copy(update={"id": event_id or event.id, "v": v})
        events.append(event)
    return events


def sqlite_timestamp(value: str) -> datetime:
    """A `UtcDateTime` column's value on SQLite (ISO text, with or without an offset) as Core returns it.

    What SQLAlchemy's processing does (``datetime.fromisoformat``, then `UtcDateTime.process_result_value`)
    without its Python frames.
    """
    return as_utc(datetime.fromisoformat(value))


EVENT_COLUMNS: Final = (
    *("seq", "id", "type", "turn", "ts", "ts_offset", "agent_id", "tool_call_id", "v", "data", "data_zlib"),
)
"""The columns of an event's row that `decode_events` takes, in order."""


# -- conversation messages ------------------------------------------------------------------------------


def message_of(payload: EventPayload) -> Message | None:
    """The conversation message an event's payload carries, as the agent loop adds it, if any."""
    if isinstance(payload, ModelRespondedPayload):
        return payload.message
    if isinstance(payload, ToolFinishedPayload | ToolFailedPayload):
        return ToolResultMessage.of(payload.result)
    return None


_Key = tuple[str, str | None, str | None]


def _key(message: Message) -> _Key | None:
    """What tells the messages of a run apart (a reference is checked against the message in full)."""
    if type(message) is AssistantMessage:
        return "assistant", message.content, message.tool_calls[0].id if message.tool_calls else None
    if type(message) is ToolResultMessage:
        return "tool", message.tool_call_id, None
    return None


class MessageIndex:
    """The messages a run's events carry, so that checkpoints can reference them.

    A store keeps one per run it writes; it must hold only events committed, or being committed in the
    transaction that writes the checkpoint (the store starts the index over when it cannot tell). A message
    is referenced only when an event reproduces it exactly: it is the very object the event carries (the
    agent loop's replies, the messages `load` returned), or it has the same JSON (a tool result message,
    which the loop builds from the event's result); any other message is stored whole.
    """

    __slots__ = ("_by_key", "_by_object")

    def __init__(self) -> None:
        self._by_object: dict[int, tuple[int, Message]] = {}
        """By ``id()`` of the message (which the entry keeps alive, so that the id is not reused)."""
        self._by_key: dict[_Key, tuple[int, Message]] = {}

    def add(self, seq: int, message: Message) -> None:
        """Record that the event at `seq` carries `message`."""
        self._by_object[id(message)] = (seq, message)
        key = _key(message)
        if key is not None:
            self._by_key[key] = (seq, message)

    def add_events(self, events: Sequence[Event]) -> None:
        """Record the messages `events` carry."""
        for event in events:
            message = message_of(event.payload)
            if message is not None:
                self.add(event.seq, message)

    def add_loaded(self, carried: Mapping[int, Message]) -> None:
        """Record messages that `load` resolved (``seq`` to message): the loop goes on with these objects."""
        by_object = self._by_object
        for seq, message in carried.items():
            by_object[id(message)] = (seq, message)

    def reference(self, message: Message) -> int | None:
        """The ``seq`` of an event that reproduces `message` exactly, if one is known."""
        known = self._by_object.get(id(message))
        if known is not None and known[1] is message:
            return known[0]
        key = _key(message)
        if key is None or (known := self._by_key.get(key)) is None:
            return None
        seq, carried = known
        if carried.model_dump_json() != message.model_dump_json():
            return None
        self._by_object[id(message)] = (seq, message)  # the next time (a snapshot), found at once
        return seq


# -- checkpoints ----------------------------------------------------------------------------------------


class StoredDelta(TurnDelta):
    """A checkpoint delta's document: messages are event ``seq`` references or messages."""

    # Widens the field on purpose (a stored document is not a TurnDelta until its references are resolved).
    messages: tuple[int | Message, ...] = ()  # type: ignore[assignment]


class StoredState(CheckpointState):
    """A snapshot's document: the state (its ``turn`` is the row's), messages as in `StoredDelta`."""

    messages: tuple[int | Message, ...] = ()  # type: ignore[assignment]  # widened, as in StoredDelta


_MESSAGES: Final = frozenset({"messages"})
_MESSAGES_AND_TURN: Final = frozenset({"messages", "turn"})
_DELTA_OMITS_DEFAULTS: Final = omits_defaults(TurnDelta, besides=_MESSAGES)
_STATE_OMITS_DEFAULTS: Final = omits_defaults(CheckpointState, besides=_MESSAGES_AND_TURN)


def checkpoint_document(checkpoint: Checkpoint, index: MessageIndex) -> str:
    """The JSON document of a checkpoint row, its messages referenced through `index` where possible."""
    part: TurnDelta | CheckpointState
    if isinstance(checkpoint, CheckpointSnapshot):
        part, exclude, omit = checkpoint.state, _MESSAGES_AND_TURN, _STATE_OMITS_DEFAULTS
    else:
        part, exclude, omit = checkpoint.delta, _MESSAGES, _DELTA_OMITS_DEFAULTS
    rest = part.model_dump_json(exclude=set(exclude), exclude_defaults=omit)
    items = []
    for message in part.messages:
        seq = index.reference(message)
        items.append(message.model_dump_json() if seq is None else str(seq))
    # The fields other than the messages follow them: ``rest`` is a JSON object, maybe empty ("{}").
    return f'{{"messages":[{",".join(items)}]{"," if len(rest) > 2 else ""}{rest[1:]}'


def stored_references(messages: Sequence[int | Message]) -> list[int]:
    """The event ``seq`` references among a stored document's messages."""
    return [item for item in messages if isinstance(item, int)]


def resolve_messages(
    messages: Sequence[int | Message], carried: Mapping[int, Message], where: str
) -> tuple[Message, ...]:
    """A stored document's messages with every reference replaced by the message its event carries.

    Raises:
        LookupError: A reference names no event carrying a message (`where` says which row).
    """
    resolved: list[Message] = []
    for item in messages:
        if isinstance(item, int):
            message = carried.get(item)
            if message is None:
                raise LookupError(f"{where} references seq {item}, which carries no message")
            resolved.append(message)
        else:
            resolved.append(item)
    return tuple(resolved)
