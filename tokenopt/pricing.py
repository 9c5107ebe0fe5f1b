"""Dollar cost of a call, from a maintained price source (genai-prices), never a typed table.

Every service tier is priced here. Standard: the model's list price. Batch API: genai-prices'
batch rates (``processing: batch``). Flex: genai-prices' flex rates (``service_tier: flex``),
published for the models OpenAI sells on flex (the gpt-5 and o-series families, not gpt-4.1);
a model without them is not offered flex (``offers_flex``), and an answer served on flex
anyway is priced at the batch rates, as OpenAI prices flex.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price
from genai_prices.types import PriceCalculation

from tokenopt.service_tiers import ServiceTier

# OpenAI's documented Batch API discount (50% of the standard input and output price), used only
# for a model genai-prices has no batch rate for; otherwise its batch rates apply as published.
BATCH_DISCOUNT = Decimal("0.5")
_BATCH_CONTEXT = {"processing": "batch"}
_FLEX_CONTEXT = {"service_tier": "flex"}


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
    tier: ServiceTier = ServiceTier.STANDARD,
) -> Decimal:
    """Dollars for one call on ``tier``; cached prompt tokens at the provider's cache-read price.

    Batch (``tier`` BATCH, or ``batch`` as older callers say it): genai-prices' batch rates for
    the model (or, for a model it has none for, the documented 50% discount). Flex: its flex
    rates, or for a model it has none for, the batch price (OpenAI prices flex at batch rates)."""
    if batch:
        tier = ServiceTier.BATCH
    if model in free_models:
        return Decimal(0)
    if tier is ServiceTier.FLEX and not offers_flex(model):
        tier = ServiceTier.BATCH
    usage = Usage(input_tokens=prompt_tokens, cache_read_tokens=cached_tokens, output_tokens=completion_tokens)
    context = {ServiceTier.BATCH: _BATCH_CONTEXT, ServiceTier.FLEX: _FLEX_CONTEXT}.get(tier)
    try:
        price = calc_price(usage, model_ref=model, provider_id="openai", price_context=context)
    except LookupError as err:
        raise UnknownModelPrice(f"no price known for model {model!r}") from err
    if tier is ServiceTier.BATCH and not has_batch_rate(price):
        return Decimal(price.total_price) * BATCH_DISCOUNT
    return Decimal(price.total_price)


@lru_cache(maxsize=256)
def offers_flex(model: str) -> bool:
    """Whether the model is sold on flex: genai-prices publishes a flex rate for it."""
    try:
        price = calc_price(Usage(input_tokens=1, output_tokens=1), model_ref=model, provider_id="openai")
    except LookupError:
        return False
    return any(v.when.get("service_tier") == "flex" for v in price.model.price_variants or ())


def has_batch_rate(price: PriceCalculation) -> bool:
    """Whether genai-prices publishes a Batch API rate for the priced model."""
    return any(v.when.get("processing") == "batch" for v in price.model.price_variants or ())
