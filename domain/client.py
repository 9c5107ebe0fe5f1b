"""The CRM's client record, exactly as the application form sends it (camelCase on the wire)."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from domain.limits import (
    MAX_PROBLEMS,
    ClientId,
    FreeText,
    Handle,
    Name,
    ShortList,
    ShortText,
    extra_field_problems,
    where,
)


class ClientStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    ARCHIVED = "ARCHIVED"


# Personal data: never sent to a model unless a section's projection names it (email: never).
PERSONAL_FIELDS = frozenset({"fullName", "email", "instagramHandle", "tiktokHandle"})
SENSITIVE_FIELDS = frozenset({"personalTurningPoints"})


class ClientRecord(BaseModel):
    """One creator-client. Unknown extra fields are kept (``extra="allow"``) but never mapped.
    Every field's length and characters are bounded (domain/limits.py)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", str_strip_whitespace=True)

    id: ClientId
    full_name: Name
    email: EmailStr
    instagram_handle: Handle | None = None
    tiktok_handle: Handle | None = None
    country: ShortText | None = None
    age: int | None = Field(default=None, ge=13, le=120)
    industry_niche: ShortText | None = None
    status: ClientStatus = ClientStatus.ACTIVE
    brand_name: Name | None = None

    professional_milestones: FreeText | None = None
    personal_turning_points: FreeText | None = None
    vision_for_venture: FreeText | None = None
    hope_to_achieve: FreeText | None = None

    target_audience: FreeText | None = None
    demographic_profile: FreeText | None = None
    target_demographic_age: ShortText | None = None
    audience_gender_split: ShortText | None = None
    audience_marital_status: ShortText | None = None
    current_channels: FreeText | None = None

    key_pain_points: FreeText | None = None
    brand_values: FreeText | None = None

    differentiation: FreeText | None = None
    unique_value_props: FreeText | None = None
    emerging_competitors: FreeText | None = None

    ideal_brand_image: FreeText | None = None
    inspiration_brands: FreeText | None = None
    branding_aesthetics: FreeText | None = None
    emotions_brand_evokes: FreeText | None = None
    brand_personality: FreeText | None = None
    preferred_font: ShortText | None = None

    product_categories: Annotated[list[ShortText], ShortList] = Field(default_factory=list)
    other_product_ideas: FreeText | None = None

    scaling_goals: FreeText | None = None
    growth_strategies: FreeText | None = None
    long_term_vision: FreeText | None = None
    specific_deadlines: FreeText | None = None
    additional_info: FreeText | None = None

    @field_validator("product_categories", mode="before")
    @classmethod
    def _categories_from_text(cls, value: Any) -> Any:
        # The CRM form sometimes sends a comma-separated string instead of a list.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def wire(self) -> dict[str, Any]:
        """The record as the CRM spells it (camelCase), extra fields included, nulls dropped."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def content_hash(self) -> str:
        payload = json.dumps(self.wire(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(payload.encode()).hexdigest()


class InvalidClientRecord(ValueError):
    """A client record failed validation; ``problems`` lists each field at fault."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid client record: " + "; ".join(problems))


def parse_client(data: Any) -> ClientRecord:
    """Validate one CRM record against its fields and limits, raising InvalidClientRecord with
    every field at fault (values are never quoted at length)."""
    if not isinstance(data, dict):
        raise InvalidClientRecord([f"expected a JSON object, got {type(data).__name__}"])
    problems = extra_field_problems({k: v for k, v in data.items() if k not in _FIELD_NAMES})
    try:
        record = ClientRecord.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err["loc"], err["msg"]) for err in exc.errors()[:MAX_PROBLEMS]] + problems
    if problems:
        raise InvalidClientRecord(problems[:MAX_PROBLEMS])
    return record


def _problem(loc: tuple[Any, ...], msg: str) -> str:
    # A validator's message may quote what it read (an email address); keep it short.
    text = msg if len(msg) <= 160 else f"{msg[:160]}…"
    return f"{where(loc) or '(record)'}: {text}"


# Every field the CRM defines, in wire spelling; used to reject unknown names in updates.
KNOWN_FIELDS = frozenset(ClientRecord.model_fields[name].alias or name for name in ClientRecord.model_fields)
# Both spellings a record may use for a known field (populate_by_name); anything else is extra.
_FIELD_NAMES = KNOWN_FIELDS | frozenset(ClientRecord.model_fields)
