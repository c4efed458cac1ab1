"""Request and response bodies of the contract, as pydantic models (they make /openapi.json).

Request models are strict about types (``"7"`` is not a number of days) and lenient about
presence: a missing field is ``None`` and the ledger's own validation answers with the
contract's code (``name is required``, ``daemon_id is required``, ...). A field of the wrong
type answers the code in the model's ``field_errors`` (``invalid request body`` unless named),
and a body that is not a JSON object answers its ``body_error``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Self, TypeVar
from uuid import UUID

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StrictStr
from pydantic import ValidationError as PydanticValidationError

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


# ------------------------------------------------------------------------------- requests


class RequestModel(BaseModel):
    """A JSON object body; ``parse`` turns any failure into the model's ledger error."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    body_error: ClassVar[type[LedgerError]] = InvalidRequestBody
    field_errors: ClassVar[Mapping[str, type[LedgerError]]] = {}

    @classmethod
    def parse(cls, raw: bytes) -> Self:
        try:
            return cls.model_validate_json(raw)
        except PydanticValidationError as error:
            raise cls._translate(error) from None

    @classmethod
    def _translate(cls, error: PydanticValidationError) -> LedgerError:
        fields: set[str] = set()
        for detail in error.errors(include_url=False, include_input=False):
            location = detail["loc"]
            if not location or location[0] not in cls.model_fields:
                return cls.body_error()  # not JSON, or not an object
            fields.add(str(location[0]))
        # The first failing field in declaration order: the order the ledger checks them in.
        first = next(name for name in cls.model_fields if name in fields)
        return cls.field_errors.get(first, InvalidRequestBody)()


class CreateTokenRequest(RequestModel):
    """``POST /api/tokens``."""

    field_errors: ClassVar[Mapping[str, type[LedgerError]]] = {
        "expires_in_days": InvalidExpiresInDays
    }

    name: StrictStr | None = Field(
        default=None,
        description="1..100 characters once trimmed; blank or missing: 400 `name is required`",
        examples=["laptop"],
    )
    expires_in_days: StrictInt | None = Field(
        default=None,
        description="1..3650, or null/absent for a token that never expires; "
        "anything else: 400 `invalid expires_in_days`",
        examples=[30],
    )


class CreateWorkspaceRequest(RequestModel):
    """``POST /api/workspaces``."""

    name: StrictStr | None = Field(
        default=None, description="1..100 characters once trimmed", examples=["acme"]
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


class ExchangeRequest(RequestModel):
    """``POST /api/install-tokens/exchange``."""

    body_error: ClassVar[type[LedgerError]] = MalformedInstallToken
    field_errors: ClassVar[Mapping[str, type[LedgerError]]] = {
        "token": MalformedInstallToken,
        "daemon_id": DaemonIdRequired,
    }

    token: StrictStr | None = Field(default=None, description="the install token (`mit_…`)")
    daemon_id: StrictStr | None = Field(
        default=None, description="1..128 characters once trimmed", examples=["build-box-1"]
    )


# ------------------------------------------------------------------------------ responses


class ErrorBody(BaseModel):
    """Every error: ``{"error": code}`` (a 500 also carries ``request_id``)."""

    error: str
    request_id: str | None = Field(default=None, description="on 500 answers only")


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
    ExchangeRequest,
)


M = TypeVar("M", bound=BaseModel)


def from_view(model: type[M], view: object, **fields: Any) -> M:
    """``model`` filled from the same-named attributes of a ledger view (plus ``fields``)."""
    names = {name: getattr(view, name) for name in model.model_fields if hasattr(view, name)}
    return model.model_validate({**names, **fields})
