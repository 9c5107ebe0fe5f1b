"""Dollar cost of a call, from a maintained price source (genai-prices), never a typed table."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from genai_prices import Usage, calc_price


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
) -> Decimal:
    """Dollars for one call; cached prompt tokens at the provider's cache-read price."""
    if model in free_models:
        return Decimal(0)
    try:
        price = calc_price(
            Usage(
                input_tokens=prompt_tokens,
                cache_read_tokens=cached_tokens,
                output_tokens=completion_tokens,
            ),
            model_ref=model,
            provider_id="openai",
        )
    except LookupError as err:
        raise UnknownModelPrice(f"no price known for model {model!r}") from err
    return Decimal(price.total_price)
