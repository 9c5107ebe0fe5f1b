"""The base of every output model: closed objects, so an answer with extra keys is invalid."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class OutputModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
