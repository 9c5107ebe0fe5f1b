"""Dependency wiring shared by the worker, the web app and the CLI: the Temporal connection, the
activities' dependencies (database, LLM client, router, cache, budgets, limits) built from the
settings, and the worker processes' plumbing."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

import asyncpg
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.alerts import AlertConfig, AlertNotifier
from activities.budget_guard import BudgetGuard
from activities.crm_notify import CrmNotifyConfig
from activities.dependencies import PlanDependencies
from activities.rate_limiter import RateLimiter
from activities.section_cache import CacheConfig
from domain.rate_limits import default_limits
from llm.client import LLMClient
from llm.timeouts import LOCAL_SECONDS_PER_TOKEN, REMOTE_SECONDS_PER_TOKEN, CallTimeouts
from service.endpoints import LLMEndpoint
from service.settings import Settings
from storage import db
from storage.spool import Spool
from tokenopt.pricing import check_priced
from tokenopt.routing import ModelRouter
from tokenopt.techniques import Technique, Techniques
from workflows import search_attributes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LLMConfig:
    """Where calls go and which model serves each tier. ``api_key`` is never logged."""

    api_key: str
    base_url: str | None
    model_override: str | None
    free_models: frozenset[str]
    structured_output: str = "json_schema"
    # Where semantic-cache embeddings come from: the endpoint's model, or offline hashing.
    embeddings: str = "endpoint"
    # How fast the endpoint writes, for call timeouts (WAVELAUNCH_LLM_TIMEOUT_PER_TOKEN_SECONDS wins).
    seconds_per_output_token: float = REMOTE_SECONDS_PER_TOKEN

    @classmethod
    def from_endpoint(cls, endpoint: LLMEndpoint) -> LLMConfig:
        local = endpoint.kind == "local"
        return cls(
            api_key=endpoint.api_key.get_secret_value(),
            base_url=endpoint.base_url,
            model_override=endpoint.model_override,
            # A self-hosted model costs no per-token dollars; every other model must be priced.
            free_models=frozenset({endpoint.model_override}) if local and endpoint.model_override else frozenset(),
            structured_output="json_object" if local else "json_schema",
            embeddings="hashing" if local else "endpoint",
            seconds_per_output_token=LOCAL_SECONDS_PER_TOKEN if local else REMOTE_SECONDS_PER_TOKEN,
        )


class WorkerMetricsUnavailable(RuntimeError):
    pass


def worker_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime serving the SDK's worker metrics (Prometheus) on
    ``WAVELAUNCH_WORKER_METRICS_HOST:PORT``; None (the default runtime) when the port is 0."""
    if not settings.worker_metrics_port:
        return None
    address = f"{settings.worker_metrics_host}:{settings.worker_metrics_port}"
    try:
        return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    except ValueError as err:
        raise WorkerMetricsUnavailable(
            f"cannot serve worker metrics on {address} ({err}); another worker may hold the port: "
            "set WAVELAUNCH_WORKER_METRICS_PORT to a free port, or 0 to not serve them"
        ) from None


async def connect_temporal(settings: Settings, address: str | None = None, *, runtime: Runtime | None = None) -> Client:
    """A Temporal client with the pydantic data converter (client, worker and replayer alike);
    ``runtime``: the worker's, for its metrics (``worker_runtime``)."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    return await Client.connect(
        address or settings.effective_temporal_address(),
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        tls=TLSConfig() if settings.temporal_tls or api_key else False,
        api_key=api_key,
        runtime=runtime,
    )


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register our search attributes on ``namespace`` if missing (idempotent)."""
    try:
        listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
        known = set(listed.custom_attributes)
    except RPCError as err:
        if err.status != RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server
            raise
        known = set()
    missing = {
        name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for name in search_attributes.REGISTRATION
        if name not in known
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        log.info("registered search attributes %s", ", ".join(missing))


def router_for(settings: Settings, llm: LLMConfig) -> ModelRouter:
    return ModelRouter(
        premium=settings.model_premium,
        standard=settings.model_standard,
        economy=settings.model_economy,
        override=llm.model_override or settings.model_override,
    )


async def plan_dependencies(settings: Settings, database_url: str, llm: LLMConfig) -> PlanDependencies:
    """Everything plan activities need; fails fast when a routed model has no known price."""
    techniques = Techniques.without(settings.disabled_techniques)  # unknown names fail here
    router = router_for(settings, llm)
    free = frozenset(settings.free_models) | llm.free_models
    cache = CacheConfig(
        ttl_hours=settings.cache_ttl_hours,
        max_entries=settings.cache_max_entries,
        semantic_threshold=settings.semantic_threshold,
        embeddings=settings.embeddings or llm.embeddings,
        embedding_model=settings.embedding_model,
    )
    priced = router.models() | {settings.naive_model}
    if cache.embeddings == "endpoint" and techniques.on(Technique.SEMANTIC_CACHE):
        priced.add(cache.embedding_model)
    check_priced(priced, set(free))
    # A section holds one connection for its cache lock while it runs and needs another for the
    # budget, the ledger and storage; fewer connections than that deadlock a busy worker.
    pool = await db.connect(database_url, max_size=max(10, 2 * settings.worker_max_concurrent_activities + 2))
    client = LLMClient(
        api_key=llm.api_key,
        base_url=llm.base_url,
        timeouts=call_timeouts(settings, llm),
        structured_output=llm.structured_output,
    )
    guard = BudgetGuard(
        pool,
        AlertNotifier(pool, alert_config(settings)),
        free_models=free,
        on_pause=settings.budget_on_pause,
        stale_after_seconds=settings.budget_reservation_ttl_seconds,
    )
    return PlanDependencies(
        crm=crm_notify_config(settings),
        guard=guard,
        limiter=rate_limiter(settings, pool, llm),
        pool=pool,
        llm=client,
        router=router,
        naive_model=settings.naive_model,
        free_models=free,
        techniques=techniques,
        cache=cache,
        batch_api=settings.batch_api,
        spool=Spool(settings.spool_dir),
    )


def rate_limiter(settings: Settings, pool: asyncpg.Pool, llm: LLMConfig) -> RateLimiter | None:
    """The shared provider limits: the setting, else the endpoint's defaults (OpenAI: tier 1);
    a local model has none. None when no model is limited."""
    if llm.structured_output == "json_object":
        return None
    limits = settings.rate_limits if settings.rate_limits is not None else default_limits(llm.base_url)
    limiter = RateLimiter(pool, limits, max_inline_wait_seconds=settings.rate_limit_max_inline_wait_seconds)
    return limiter if limiter.limits else None


def call_timeouts(settings: Settings, llm: LLMConfig) -> CallTimeouts:
    per_token = settings.llm_timeout_per_token_seconds
    return CallTimeouts(
        base_seconds=settings.llm_timeout_base_seconds,
        seconds_per_output_token=llm.seconds_per_output_token if per_token is None else per_token,
        max_seconds=settings.llm_timeout_seconds,
    )


def alert_config(settings: Settings) -> AlertConfig:
    secret = settings.alert_webhook_secret or settings.webhook_secret
    return AlertConfig(
        webhook_url=settings.alert_webhook_url,
        webhook_secret=secret.get_secret_value() if secret else None,
        timeout_seconds=settings.alert_webhook_timeout_seconds,
        attempts=settings.alert_webhook_attempts,
        cache_hit_rate_target=settings.cache_hit_rate_target,
        cache_window_hours=settings.cache_hit_rate_window_hours,
        cache_min_sections=settings.cache_hit_rate_min_sections,
    )


def crm_notify_config(settings: Settings) -> CrmNotifyConfig:
    secret = settings.crm_webhook_secret or settings.webhook_secret
    return CrmNotifyConfig(
        url=settings.crm_webhook_url,
        secret=secret.get_secret_value() if secret else None,
        timeout_seconds=settings.crm_webhook_timeout_seconds,
        attempts=settings.crm_webhook_attempts,
    )


class Workers:
    """One worker process's Temporal workers: the interactive task queue, and the background
    queue (domain.queues) with activity slots of its own, so background work never takes the
    slots interactive work needs. Used as ``async with worker.build_worker(...)``."""

    def __init__(self, workers: list[Worker]):
        self.workers = workers

    @property
    def task_queue(self) -> str:
        return self.workers[0].task_queue

    @property
    def task_queues(self) -> list[str]:
        return [w.task_queue for w in self.workers]

    async def __aenter__(self) -> Workers:
        entered: list[Worker] = []
        try:
            for w in self.workers:
                await w.__aenter__()
                entered.append(w)
        except BaseException:
            for w in reversed(entered):
                await w.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        # Shut down together: each waits for its running activities (graceful shutdown).
        await asyncio.gather(*(w.__aexit__(None, None, None) for w in reversed(self.workers)))


async def close_dependencies(deps: PlanDependencies) -> None:
    await deps.guard.notifier.drain()  # alerts being delivered
    await deps.llm.close()
    await deps.pool.close()


async def until_signal() -> None:
    """Return on SIGINT or SIGTERM (Ctrl-C, `docker stop`)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
