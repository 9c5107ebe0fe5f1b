"""Review states of a document version, and the reasons a review is refused."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, ValidationError

from domain.limits import FreeText, InputRefused, Name, where


class ReviewState(StrEnum):
    DRAFT = "draft"  # every new version
    APPROVED = "approved"
    CHANGES_REQUESTED = "changes_requested"


class ReviewSource(StrEnum):
    CLI = "cli"
    API = "api"
    CRM = "crm"


class UnknownDocument(LookupError):
    """No such document (or version) for the client."""


class ReviewRefused(ValueError):
    """A review that cannot be made (a superseded version, an approved one changed); nothing
    was changed."""


class ReviewInput(BaseModel):
    """Who reviews and why, as an operator or the CRM gives it (bounded like any input)."""

    by: Name | None = Field(None, description="Who reviewed it (an operator's name).")
    note: FreeText | None = Field(None, description="Why; what to change.")

    @classmethod
    def checked(cls, by: str | None, note: str | None) -> ReviewInput:
        """InputRefused naming the field at fault."""
        try:
            return cls(by=by, note=note)
        except ValidationError as err:
            raise InputRefused([f"--{where(e['loc'])}: {e['msg']}" for e in err.errors()]) from None
