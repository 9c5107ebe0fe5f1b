"""Budgets as the CRM's operators know them: per period, global or per client, token and dollar
limits, alert thresholds and optional auto-pause; and the alerts they raise."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field, field_validator

# The CRM's defaults (DESIGN.md §3).
DEFAULT_TOKEN_LIMIT = 1_000_000
DEFAULT_COST_LIMIT = Decimal(50)
DEFAULT_THRESHOLDS = (50, 75, 90, 100)


class Period(StrEnum):
    DAILY = "daily"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class BudgetScope(StrEnum):
    GLOBAL = "global"
    CLIENT = "client"


class InvalidBudget(ValueError):
    """A budget setting that cannot be stored (negative limit, bad threshold, scope mismatch)."""


def parse_thresholds(value: str) -> list[int]:
    """``"50,75,90,100"`` -> ``[50, 75, 90, 100]``; raises InvalidBudget on anything else."""
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise InvalidBudget(
            f"thresholds must be whole percentages, comma-separated (e.g. 50,75,90,100): {value!r}"
        ) from None
    return check_thresholds(items)


def check_thresholds(items: list[int]) -> list[int]:
    bad = [t for t in items if not 1 <= t <= 100]
    if bad or not items:
        raise InvalidBudget(f"thresholds must be percentages between 1 and 100, got {items}")
    return sorted(set(items))


class BudgetSpec(BaseModel):
    """What `budget set` stores. ``None`` limits mean: keep the stored one (or the CRM default)."""

    scope: BudgetScope
    client_id: str | None = None
    period: Period
    token_limit: int | None = None
    cost_limit: Decimal | None = None
    thresholds: list[int] | None = None
    auto_pause: bool | None = None

    def check(self) -> BudgetSpec:
        """Raise InvalidBudget for a setting that cannot be stored; thresholds come back sorted."""
        if (self.scope is BudgetScope.CLIENT) != bool(self.client_id):
            raise InvalidBudget("a client budget needs a client id, and a global budget must not have one")
        if self.token_limit is not None and self.token_limit < 0:
            raise InvalidBudget(f"the token limit must be 0 or more, got {self.token_limit}")
        if self.cost_limit is not None and self.cost_limit < 0:
            raise InvalidBudget(f"the dollar limit must be 0 or more, got {self.cost_limit}")
        if self.thresholds is not None:
            self.thresholds = check_thresholds(self.thresholds)
        return self

    def label(self) -> str:
        who = "global" if self.scope is BudgetScope.GLOBAL else f"client {self.client_id}"
        return f"{self.period.value} {who} budget"


def use_fraction(tokens: int, token_limit: int, cost: Decimal, cost_limit: Decimal) -> float:
    """The larger of the token and the dollar share of the limits (a zero limit is full at once)."""

    def share(used: float, limit: float) -> float:
        return used / limit if limit > 0 else 1.0

    return max(share(tokens, token_limit), share(float(cost), float(cost_limit)))


def reached(thresholds: list[int], fraction: float) -> list[int]:
    """The thresholds (percentages) a use of ``fraction`` has reached."""
    return [t for t in thresholds if fraction * 100 >= t]


class BudgetUse(BaseModel):
    """One budget in its current period: limits, settled use and reservations in flight."""

    budget_id: int
    scope: BudgetScope
    client_id: str | None
    period: Period
    period_start: datetime
    token_limit: int
    cost_limit: Decimal
    tokens_used: int = 0
    cost_used: Decimal = Decimal(0)
    tokens_reserved: int = 0
    cost_reserved: Decimal = Decimal(0)
    # max of the token and dollar use, reservations included; 1.0 is the limit.
    fraction: float = 0.0
    paused: bool = False
    auto_pause: bool = False
    thresholds: list[int] = Field(default_factory=lambda: list(DEFAULT_THRESHOLDS))

    @field_validator("fraction")
    @classmethod
    def _rounded(cls, value: float) -> float:
        return round(value, 6)

    def label(self) -> str:
        who = "global" if self.scope is BudgetScope.GLOBAL else f"client {self.client_id}"
        return f"{self.period.value} {who} budget #{self.budget_id}"

    def describe(self) -> str:
        """Limits and use in one line, for error messages and alerts."""
        return (
            f"{self.label()} (period from {self.period_start:%Y-%m-%d}): "
            f"{self.tokens_used + self.tokens_reserved:,} of {self.token_limit:,} tokens and "
            f"${self.cost_used + self.cost_reserved:.4f} of ${self.cost_limit:.2f} used or reserved"
        )


class Alert(BaseModel):
    id: int
    kind: Literal["budget_threshold", "cache_hit_rate"]
    message: str
    budget_id: int | None = None
    threshold: int | None = None
    created_at: datetime
    delivered: bool = False
    delivery_error: str | None = None
