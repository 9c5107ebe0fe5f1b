"""The CRM's client record, exactly as the application form sends it (camelCase on the wire)."""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, EmailStr, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel


class ClientStatus(StrEnum):
    ACTIVE = "ACTIVE"
    INACTIVE = "INACTIVE"
    ARCHIVED = "ARCHIVED"


# Personal data: never sent to a model unless a section's projection names it (email: never).
PERSONAL_FIELDS = frozenset({"fullName", "email", "instagramHandle", "tiktokHandle"})
SENSITIVE_FIELDS = frozenset({"personalTurningPoints"})


class ClientRecord(BaseModel):
    """One creator-client. Unknown extra fields are kept (``extra="allow"``) but never mapped."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_\-]+$")
    full_name: str = Field(min_length=1, max_length=200)
    email: EmailStr
    instagram_handle: str | None = None
    tiktok_handle: str | None = None
    country: str | None = None
    age: int | None = Field(default=None, ge=13, le=120)
    industry_niche: str | None = None
    status: ClientStatus = ClientStatus.ACTIVE
    brand_name: str | None = None

    professional_milestones: str | None = None
    personal_turning_points: str | None = None
    vision_for_venture: str | None = None
    hope_to_achieve: str | None = None

    target_audience: str | None = None
    demographic_profile: str | None = None
    target_demographic_age: str | None = None
    audience_gender_split: str | None = None
    audience_marital_status: str | None = None
    current_channels: str | None = None

    key_pain_points: str | None = None
    brand_values: str | None = None

    differentiation: str | None = None
    unique_value_props: str | None = None
    emerging_competitors: str | None = None

    ideal_brand_image: str | None = None
    inspiration_brands: str | None = None
    branding_aesthetics: str | None = None
    emotions_brand_evokes: str | None = None
    brand_personality: str | None = None
    preferred_font: str | None = None

    product_categories: list[str] = Field(default_factory=list)
    other_product_ideas: str | None = None

    scaling_goals: str | None = None
    growth_strategies: str | None = None
    long_term_vision: str | None = None
    specific_deadlines: str | None = None
    additional_info: str | None = None

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
    """Validate one CRM record, raising InvalidClientRecord with every field at fault."""
    if not isinstance(data, dict):
        raise InvalidClientRecord([f"expected a JSON object, got {type(data).__name__}"])
    try:
        return ClientRecord.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "(record)"
            problems.append(f"{where}: {err['msg']}")
        raise InvalidClientRecord(problems) from None


# Every field the CRM defines, in wire spelling; used to reject unknown names in updates.
KNOWN_FIELDS = frozenset(ClientRecord.model_fields[name].alias or name for name in ClientRecord.model_fields)
