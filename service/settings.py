"""Every setting of the service, in one place.

Project settings carry the ``WAVELAUNCH_`` prefix; the standard variables of each ecosystem
(``TEMPORAL_ADDRESS``, ``DATABASE_URL``, ``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) keep their
usual names so existing deployments need no translation.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from domain.queues import Lane
from domain.rate_limits import ModelLimit
from workflows.shared import SECTION_START_TO_CLOSE


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WAVELAUNCH_", extra="ignore")

    state_dir: Path = Path(".wavelaunch")

    # Temporal: an external cluster when TEMPORAL_ADDRESS is set, else the embedded dev server.
    temporal_address: str | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_ADDRESS", "WAVELAUNCH_TEMPORAL_ADDRESS")
    )
    temporal_namespace: str = Field(
        default="default",
        validation_alias=AliasChoices("TEMPORAL_NAMESPACE", "WAVELAUNCH_TEMPORAL_NAMESPACE"),
    )
    temporal_tls: bool = False
    temporal_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("TEMPORAL_API_KEY", "WAVELAUNCH_TEMPORAL_API_KEY")
    )
    temporal_port: int = 7233
    temporal_ui_port: int = 8233
    temporal_ui_url: str | None = None
    task_queue: str = "wavelaunch"
    # Background work (bulk, scheduled runs, deadlines a day or more away: domain.queues) goes on
    # its own queue; unset: "<task_queue>-background".
    background_task_queue: str | None = None

    # Postgres: DATABASE_URL, else the embedded server under state_dir.
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("DATABASE_URL", "WAVELAUNCH_DATABASE_URL")
    )

    # LLM: OPENAI_API_KEY (+ OPENAI_BASE_URL), else the local llama.cpp server.
    openai_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "WAVELAUNCH_OPENAI_API_KEY")
    )
    openai_base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "WAVELAUNCH_OPENAI_BASE_URL")
    )
    # One call's timeout (llm.timeouts): base + per output token allowed, at most the cap. The cap
    # stays under the section activity's start-to-close, so a hung call fails as a retryable
    # LLMTimeout rather than the whole attempt timing out. Per token unset: 0.05 s (OpenAI-
    # compatible endpoints), 0.25 s for the local model.
    llm_timeout_seconds: float = Field(300.0, gt=0, lt=SECTION_START_TO_CLOSE.total_seconds())
    llm_timeout_base_seconds: float = Field(30.0, gt=0)
    llm_timeout_per_token_seconds: float | None = Field(None, ge=0)
    local_llm_port: int = 8088
    local_llm_threads: int = 2
    local_llm_context: int = 8192

    # Model per routing tier (tokenopt.routing maps sections to tiers).
    model_premium: str = "gpt-4.1"
    model_standard: str = "gpt-4.1-mini"
    model_economy: str = "gpt-4.1-nano"
    # Every tier on one model, for endpoints that serve a single model (llama.cpp, vLLM).
    model_override: str | None = None
    # The naive counterfactual's model: "the top model" of the seed's way.
    naive_model: str = "gpt-4.1"
    # Models priced at zero on purpose (a self-hosted endpoint); any other unknown model fails.
    free_models: list[str] = Field(default_factory=list)

    # Token-saving techniques to switch off (benchmark ablations, debugging), e.g. '["routing"]';
    # names from tokenopt.techniques.Technique.
    disabled_techniques: list[str] = Field(default_factory=list)

    # The cache hierarchy (exact, semantic): time to live by document kind, size, similarity.
    cache_ttl_hours: dict[str, float] = Field(
        default_factory=lambda: {"business_plan": 168.0, "deliverable": 72.0, "summary": 24.0}
    )
    cache_max_entries: int = 1000
    semantic_threshold: float = 0.95
    # "endpoint": the LLM endpoint's embeddings model; "hashing": offline, no model needed.
    # Unset: the endpoint for OpenAI, hashing for the local model.
    embeddings: str | None = None
    embedding_model: str = "text-embedding-3-small"

    # CRM webhooks: the shared HMAC secret, and how old a delivery's timestamp may be.
    webhook_secret: SecretStr | None = None
    webhook_max_age_seconds: float = 300.0
    # The largest request body the API reads (webhooks and /api/v1); bigger ones get 413.
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Bearer token for /api/v1 and the dashboard's data. Unset: the API serves 127.0.0.1 only,
    # without authentication (crm/auth.py refuses any other bind address).
    api_token: SecretStr | None = None

    # /metrics: client ids in labels only when an operator opts in (they identify people); when
    # set, scrapes need `Authorization: Bearer <metrics_token>` (unset: no token, as before).
    metrics_client_labels: bool = False
    metrics_token: SecretStr | None = None

    # The Temporal SDK's own worker metrics (Prometheus text): the worker serves them on
    # host:port, and the API's /metrics appends them when reachable. Port 0: not served.
    worker_metrics_host: str = "127.0.0.1"
    worker_metrics_port: int = 9464

    # Bulk regeneration: through the OpenAI Batch API (half price, within 24 h) unless false or
    # the endpoint is the local model; how often the workflow looks at a batch.
    batch_api: bool = True
    bulk_poll_seconds: int = 60
    # Budgets: what a workflow does when a budget is paused ("wait" for `budget resume`, or
    # "fail" with the budget error), and when an unsettled reservation counts as abandoned
    # (longer than any call can run: SECTION_START_TO_CLOSE is 15 minutes).
    budget_on_pause: Literal["wait", "fail"] = "wait"
    budget_reservation_ttl_seconds: float = 1200.0

    # Provider rate limits per model, held across every worker in Postgres (domain.rate_limits):
    # JSON {"model": {"tokens_per_minute": N, "requests_per_minute": N}} (null or a missing key:
    # that dimension unlimited; a model not listed: unlimited; {}: no limits at all). Unset: OpenAI
    # usage tier 1 against OpenAI's API, no limits against any other endpoint.
    rate_limits: dict[str, ModelLimit] | None = None
    # A call that must wait longer than this for its model's limits leaves the activity and waits
    # on a durable timer in the workflow (the section shows "waiting"); shorter waits stay inside.
    rate_limit_max_inline_wait_seconds: float = Field(20.0, ge=0)
    # Alerts (budget thresholds, cache hit rate): POSTed here when set, signed like the CRM's
    # webhooks with this secret (default: the webhook secret).
    alert_webhook_url: str | None = None
    alert_webhook_secret: SecretStr | None = None
    alert_webhook_timeout_seconds: float = 5.0
    alert_webhook_attempts: int = Field(4, ge=1)  # tries per alert; transient failures only
    cache_hit_rate_target: float = 0.6
    cache_hit_rate_window_hours: float = 24.0
    cache_hit_rate_min_sections: int = 50

    # The CRM is told when a document is completed, failed or needs review: POSTed here when set
    # (from a Postgres outbox), signed with this secret (default: the webhook secret).
    crm_webhook_url: str | None = None
    crm_webhook_secret: SecretStr | None = None
    crm_webhook_timeout_seconds: float = Field(10.0, gt=0)
    crm_webhook_attempts: int = Field(4, ge=1)  # tries per pass; the row is tried again later

    # Erasure: a client archived (client.archived) this many days ago is erased by the API's
    # hourly sweep (unset: never on its own); legal hold keeps its documents when it is.
    erase_archived_after_days: float | None = Field(None, ge=0)
    legal_hold_documents: bool = False

    worker_max_concurrent_activities: int = 8
    # Activity slots per worker for the background queue, apart from the interactive ones; 0: this
    # worker serves the interactive queue only.
    worker_max_concurrent_background_activities: int = Field(4, ge=0)
    # Where a worker keeps bought answers until Postgres has them (storage.spool), so a worker
    # that dies during a database outage loses none. Unset: <state_dir>/spool.
    answer_spool_dir: Path | None = None
    default_level: str = "complete"

    # Schedules (service/schedules.py): created for each client on client.created/activated.
    # Month N starts (N - 1) cadences after onboarding and is due some days after it starts; the
    # client summary runs every few days, due some hours after each start. The due windows are
    # the runs' deadlines: their calls take the cheapest service tier that meets them.
    schedules: bool = True
    deliverable_cadence_days: float = Field(30.0, gt=0)
    deliverable_due_days: float = Field(7.0, gt=0)
    summary_every_days: float = Field(7.0, gt=0)
    summary_due_hours: float = Field(6.0, gt=0)

    @property
    def temporal_state_file(self) -> Path:
        return self.state_dir / "temporal.db"

    @property
    def spool_dir(self) -> Path:
        return self.answer_spool_dir or self.state_dir / "spool"

    @property
    def pgdata_dir(self) -> Path:
        return self.state_dir / "pgdata"

    @property
    def stack_file(self) -> Path:
        return self.state_dir / "stack.json"

    @property
    def uses_external_temporal(self) -> bool:
        return self.temporal_address is not None

    @property
    def uses_external_database(self) -> bool:
        return self.database_url is not None

    @property
    def uses_remote_llm(self) -> bool:
        return self.openai_api_key is not None

    def queue_for(self, lane: Lane) -> str:
        """The task queue of ``lane`` (domain.queues decides the lane)."""
        if lane is Lane.INTERACTIVE:
            return self.task_queue
        return self.background_task_queue or f"{self.task_queue}-background"

    def effective_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    def web_ui_url(self) -> str:
        return self.temporal_ui_url or f"http://127.0.0.1:{self.temporal_ui_port}"

    def workflow_url(self, workflow_id: str) -> str:
        return f"{self.web_ui_url()}/namespaces/{self.temporal_namespace}/workflows/{workflow_id}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
