"""Request and response bodies of the contract, as pydantic models (they make /openapi.json).

Request models are strict about types (``"7"`` is not a number of days) and lenient about
presence: a missing or null field is ``None`` and the ledger's own validation answers with the
contract's code (``name is required``, ``daemon_id is required``, ...). Text fields run the
ledger's rules as they are parsed (``ledger.application.validation``: trimmed, bounded, no
control character), so a refused value answers its own code before anything else is read. A
field of the wrong type answers the code in the model's ``field_errors`` (``invalid request
body`` unless named), and a body that is not a JSON object answers its ``body_error``.

The published schema is the strict one a client should follow: the fields the ledger needs are
``required`` and not nullable (``schema_required``), text has its length limits and a
``pattern`` that excludes control characters and blank values.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
)
from pydantic import ValidationError as PydanticValidationError
from pydantic.json_schema import SkipJsonSchema

from ledger.application import validation
from ledger.domain import Role
from ledger.domain.errors import (
    DaemonIdRequired,
    InvalidExpiresInDays,
    InvalidRequestBody,
    InvalidRole,
    LedgerError,
    MalformedInstallToken,
)


def _as_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_as_utc)]
"""An instant, always written in UTC (RFC 3339, ``Z``)."""

MAX_TOKEN_TEXT = 64
"""The longest token text the contract allows (every token the ledger issues is shorter)."""
_PRINTABLE = r"[^\x00-\x1f\x7f]"
TEXT_PATTERN = rf"^{_PRINTABLE}*[^\s\x00-\x1f\x7f]{_PRINTABLE}*$"
"""Text the ledger takes: no control character, and not blank (in the schema's own terms)."""


def _text_schema(max_length: int) -> dict[str, Any]:
    return {"minLength": 1, "maxLength": max_length, "pattern": TEXT_PATTERN}


def _whole_number(value: Any) -> Any:
    # JSON Schema counts 7.0 as an integer, so a client following the schema may send it.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[StrictInt, BeforeValidator(_whole_number)]
"""A JSON integer, written ``7`` or ``7.0`` (JSON Schema's ``integer``); nothing else."""
Name = Annotated[StrictStr, AfterValidator(validation.name)]
"""A display name, checked by the ledger's rule as it is parsed (``name is required``)."""
Note = Annotated[StrictStr, AfterValidator(validation.note)]
"""A revocation's note, checked by the ledger's rule as it is parsed (``invalid note``)."""
DaemonId = Annotated[StrictStr, AfterValidator(validation.daemon_id)]
"""A daemon id, checked by the ledger's rule as it is parsed (``daemon_id is required``)."""


# ------------------------------------------------------------------------------- requests


def _strict_schema(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The published schema of a request model: ``schema_required`` fields are required and
    not nullable (the model itself takes their absence and lets the ledger answer)."""
    required: tuple[str, ...] = getattr(model, "schema_required", ())
    properties: dict[str, Any] = schema.get("properties", {})
    for field in required:
        prop = properties[field]
        variants = [v for v in prop.pop("anyOf", []) if v.get("type") != "null"]
        if variants:
            prop.update(variants[0])
        prop.pop("default", None)
    schema["required"] = sorted({*schema.get("required", ()), *required})


class RequestModel(BaseModel):
    """A JSON object body; ``parse`` turns any failure into the model's ledger error."""

    model_config = ConfigDict(extra="ignore", frozen=True, json_schema_extra=_strict_schema)

    body_error: ClassVar[type[LedgerError]] = InvalidRequestBody
    field_errors: ClassVar[Mapping[str, type[LedgerError]]] = {}
    schema_required: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def parse(cls, raw: bytes) -> Self:
        try:
            return cls.model_validate_json(raw)
        except PydanticValidationError as error:
            raise cls._translate(error) from None

    @classmethod
    def _translate(cls, error: PydanticValidationError) -> LedgerError:
        fields: dict[str, str] = {}
        for detail in error.errors(include_url=False, include_input=False):
            location = detail["loc"]
            if not location or location[0] not in cls.model_fields:
                if detail["type"] == "json_invalid":
                    return cls.body_error("the body is not valid JSON")
                return cls.body_error("the body is not a JSON object")
            fields.setdefault(str(location[0]), detail["type"])
        # The first failing field in declaration order: the order the ledger checks them in.
        first = next(name for name in cls.model_fields if name in fields)
        wrong = "has the wrong type" if fields[first].endswith("_type") else "is not valid"
        return cls.field_errors.get(first, InvalidRequestBody)(f"{first} {wrong}")


class CreateTokenRequest(RequestModel):
    """``POST /api/tokens``."""

    field_errors: ClassVar[Mapping[str, type[LedgerError]]] = {
        "expires_in_days": InvalidExpiresInDays
    }
    schema_required = ("name",)

    name: Name | None = Field(
        default=None,
        description="1..100 characters, not blank, no control character; otherwise 400 "
        "`name is required`",
        examples=["laptop"],
        json_schema_extra=_text_schema(validation.MAX_NAME_LENGTH),
    )
    expires_in_days: WholeNumber | None = Field(
        default=None,
        description="1..3650, or null/absent for a token that never expires; "
        "anything else: 400 `invalid expires_in_days`",
        examples=[30],
        json_schema_extra={"minimum": 1, "maximum": validation.MAX_EXPIRES_IN_DAYS},
    )


class CreateWorkspaceRequest(RequestModel):
    """``POST /api/workspaces``."""

    schema_required = ("name",)

    name: Name | None = Field(
        default=None,
        description="1..100 characters, not blank, no control character; otherwise 400 "
        "`name is required`",
        examples=["acme"],
        json_schema_extra=_text_schema(validation.MAX_NAME_LENGTH),
    )


class AddMemberRequest(RequestModel):
    """``POST /api/workspaces/{id}/members``."""

    field_errors: ClassVar[Mapping[str, type[LedgerError]]] = {"role": InvalidRole}

    user_id: StrictStr = Field(
        description="the user's id (UUID); not a UUID: 400 `invalid user id`",
        json_schema_extra={"format": "uuid"},
    )
    role: Role = Field(description="anything else: 400 `invalid role`")


class ChangeRoleRequest(RequestModel):
    """``PATCH /api/workspaces/{id}/members/{user_id}``."""

    field_errors: ClassVar[Mapping[str, type[LedgerError]]] = {"role": InvalidRole}

    role: Role = Field(description="anything else: 400 `invalid role`")


class RevokeAllRequest(RequestModel):
    """``POST /api/tokens/revoke-all`` (the body is optional: none, ``{}`` or ``null`` fields
    keep every default)."""

    keep_current: StrictBool | None = Field(
        default=None,
        description="true: the bearer token itself stays valid; default false",
    )
    note: Note | None = Field(
        default=None,
        description="why, in the caller's words: 1..200 characters, not blank, no control "
        "character; otherwise 400 `invalid note`",
        json_schema_extra=_text_schema(validation.MAX_NOTE_LENGTH),
    )


class ExchangeRequest(RequestModel):
    """``POST /api/install-tokens/exchange``."""

    body_error: ClassVar[type[LedgerError]] = MalformedInstallToken
    field_errors: ClassVar[Mapping[str, type[LedgerError]]] = {
        "token": MalformedInstallToken,
        "daemon_id": DaemonIdRequired,
    }
    schema_required = ("token", "daemon_id")

    token: StrictStr | None = Field(
        default=None,
        description="the install token (`mit_…`); longer than 64 characters, malformed or "
        "failing its checksum: 400 `invalid_install_token`",
        min_length=1,
        max_length=MAX_TOKEN_TEXT,
    )
    daemon_id: DaemonId | None = Field(
        default=None,
        description="1..128 characters, not blank, no control character; otherwise 400 "
        "`daemon_id is required`",
        examples=["build-box-1"],
        json_schema_extra=_text_schema(validation.MAX_DAEMON_ID_LENGTH),
    )


# ------------------------------------------------------------------------------ responses


class ErrorBody(BaseModel):
    """Every error: ``{"error": code}``, with ``detail`` on a client error when there is more
    to say (a 500 carries ``request_id`` instead)."""

    error: str = Field(description="the stable error code")
    detail: str | SkipJsonSchema[None] = Field(
        default=None, description="one sentence on what was wrong with the request"
    )
    request_id: str | SkipJsonSchema[None] = Field(default=None, description="on 500 answers only")


class UserBody(BaseModel):
    user_id: UUID
    name: str


class TokenBody(BaseModel):
    """A personal access token as its owner sees it (never the secret)."""

    id: UUID
    name: str
    token_prefix: str = Field(description="the first 12 characters of the token")
    expires_at: UtcDateTime | None = Field(description="null: never expires")
    last_used_at: UtcDateTime | None = Field(description="approximate: may lag by up to a minute")
    created_at: UtcDateTime


class CreatedTokenBody(TokenBody):
    token: str = Field(description="the secret: shown only in this answer")


class RenewalBody(BaseModel):
    expires_at: str = Field(description='RFC 3339, or "" for a token that never expires')
    renewed: bool


class WorkspaceBody(BaseModel):
    id: UUID
    name: str
    created_at: UtcDateTime


class MembershipBody(BaseModel):
    """A workspace in the caller's list, with the caller's role in it."""

    id: UUID
    name: str
    role: Role
    created_at: UtcDateTime


class RevokedCountBody(BaseModel):
    revoked: int = Field(description="how many tokens this call revoked")


class MemberBody(BaseModel):
    user_id: UUID
    role: Role
    joined_at: UtcDateTime


class InstallTokenBody(BaseModel):
    id: UUID
    token: str = Field(description="the secret (`mit_…`): shown only in this answer")
    workspace_id: UUID
    expires_at: UtcDateTime
    created_at: UtcDateTime


class ExchangedBody(BaseModel):
    token: str = Field(description="the new daemon token (`mdt_…`): shown only in this answer")
    workspace_id: UUID
    daemon_id: str
    expires_at: UtcDateTime | None


class DaemonTokenBody(BaseModel):
    id: UUID
    daemon_id: str
    created_by: UUID | None
    install_token_id: UUID | None
    created_at: UtcDateTime
    expires_at: UtcDateTime | None
    revoked_at: UtcDateTime | None
    last_used_at: UtcDateTime | None


class WhoamiBody(BaseModel):
    token_id: UUID
    workspace_id: UUID | None
    daemon_id: str | None


class StatusBody(BaseModel):
    status: str


REQUEST_MODELS: tuple[type[RequestModel], ...] = (
    CreateTokenRequest,
    CreateWorkspaceRequest,
    AddMemberRequest,
    ChangeRoleRequest,
    RevokeAllRequest,
    ExchangeRequest,
)


M = TypeVar("M", bound=BaseModel)


def from_view(model: type[M], view: object, **fields: Any) -> M:
    """``model`` filled from the same-named attributes of a ledger view (plus ``fields``)."""
    names = {name: getattr(view, name) for name in model.model_fields if hasattr(view, name)}
    return model.model_validate({**names, **fields})
