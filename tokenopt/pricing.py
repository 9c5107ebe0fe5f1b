"""Dollar cost of a call, from a maintained price source (genai-prices), never a typed table."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.types import PriceCalculation

# OpenAI's documented Batch API discount (50% of the standard input and output price), used only
# for a model genai-prices has no batch rate for; otherwise its batch rates apply as published.
BATCH_DISCOUNT = Decimal("0.5")
_BATCH_CONTEXT = {"processing": "batch"}


class UnknownModelPrice(LookupError):
    pass


@lru_cache(maxsize=256)
def _known(model: str) -> bool:
    try:
        calc_price(Usage(input_tokens=1, output_tokens=1), model_ref=model, provider_id="openai")
        return True
    except LookupError:
        return False


def check_priced(models: set[str], free_models: set[str]) -> None:
    """Fail at start-up, not mid-plan, when a configured model has no known price."""
    missing = sorted(m for m in models if m not in free_models and not _known(m))
    if missing:
        raise UnknownModelPrice(
            f"no price known for model(s) {', '.join(missing)}; use an OpenAI model name or "
            "list self-hosted models in WAVELAUNCH_FREE_MODELS"
        )


def cost(
    model: str,
    *,
    prompt_tokens: int,
    cached_tokens: int = 0,
    completion_tokens: int = 0,
    free_models: frozenset[str] = frozenset(),
    batch: bool = False,
) -> Decimal:
    """Dollars for one call; cached prompt tokens at the provider's cache-read price.

    ``batch``: the call went through the Batch API, priced at genai-prices' batch rates for the
    model (or, for a model it has none for, the documented 50% discount)."""
    if model in free_models:
        return Decimal(0)
    usage = Usage(input_tokens=prompt_tokens, cache_read_tokens=cached_tokens, output_tokens=completion_tokens)
    try:
        context = _BATCH_CONTEXT if batch else None
        price = calc_price(usage, model_ref=model, provider_id="openai", price_context=context)
    except LookupError as err:
        raise UnknownModelPrice(f"no price known for model {model!r}") from err
    if batch and not has_batch_rate(price):
        return Decimal(price.total_price) * BATCH_DISCOUNT
    return Decimal(price.total_price)


def has_batch_rate(price: PriceCalculation) -> bool:
    """Whether genai-prices publishes a Batch API rate for the priced model."""
    return any(v.when.get("processing") == "batch" for v in price.model.price_variants or ())
