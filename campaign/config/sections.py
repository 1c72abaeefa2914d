"""The sections of ``config.toml``: one frozen, strict pydantic model per table.

:class:`campaign.config.schema.Config` gathers them; nothing here reads a file or the
environment.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

DEFAULT_CONFIG_FILE = "config.toml"
DEFAULT_DATABASE_URL = "sqlite:///campaign.db"
ENV_PREFIX = "CAMPAIGN_"

ChannelKind = Literal["webhook", "twilio", "sendgrid", "smtp", "file"]
ChannelMedium = Literal["email", "sms"]


class _Section(BaseModel):
    """Frozen, strict base: unknown keys are errors so typos never pass silently."""

    model_config = ConfigDict(frozen=True, extra="forbid")


def _check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA timezone {value!r}") from None
    return value


class ShopConfig(_Section):
    """Who is sending: legally required sender details and public URLs."""

    name: str = "Demo Shop"
    currency: str = Field("CNY", pattern=r"^[A-Z]{3}$")
    postal_address: str = "1 Example Road, Example City"
    base_url: str = "http://127.0.0.1:8080"
    timezone: str = "Asia/Shanghai"
    default_locale: str = "zh-CN"
    # Country (ISO 3166 alpha-2) of national phone numbers; default: the user's locale's.
    phone_region: str | None = Field(None, pattern=r"^[A-Z]{2}$")
    coupon_webhook_url: str | None = None
    coupon_webhook_secret_env: str | None = None
    coupon_webhook_secret: SecretStr | None = Field(None, exclude=True)
    # Share of revenue that is profit (0..1), for audiences ranked by expected profit
    # (``rank_by = "value"``); None: not known, and such audiences are refused.
    gross_margin: float | None = Field(None, ge=0, le=1)

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))

    @model_validator(mode="after")
    def _signed_hook(self) -> ShopConfig:
        # Named, not necessarily set: the commands that post require the variable.
        if self.coupon_webhook_url and not (
            self.coupon_webhook_secret_env or self.coupon_webhook_secret
        ):
            raise ValueError("coupon_webhook_url needs coupon_webhook_secret_env (it is signed)")
        return self


class DatabaseConfig(_Section):
    """Where the data lives. SQLite paths are relative to the working directory."""

    url: str = DEFAULT_DATABASE_URL
    echo: bool = False
    # How long SQLite waits for another process's write lock before failing.
    busy_timeout_seconds: float = Field(30.0, ge=0, le=3600)


class ModelConfig(_Section):
    """Churn model: label horizon, who counts as a customer, tree search space."""

    horizon_days: int = Field(90, ge=7, le=730)
    lookback_days: int = Field(365, ge=30, le=3650)
    max_depth_candidates: tuple[int, ...] = (3, 4, 5, 6, 8)
    min_samples_leaf_candidates: tuple[int, ...] = (20, 50, 100)
    min_customers: int = Field(500, ge=1)
    min_history_days: int = Field(180, ge=1)
    snapshots: int = Field(3, ge=1, le=24)
    tier_thresholds: dict[str, float] = Field(
        default_factory=lambda: {"high": 0.7, "medium": 0.4, "low": 0.0}
    )
    retrain_cron: str = "0 3 * * 0"
    random_state: int = 0
    # Model artifacts are pickles: each is signed (HMAC-SHA256) with a key kept out of
    # the database, and one that does not verify is never loaded (docs/churn.md). The
    # key comes from this environment variable, else from signing_key_file (relative
    # to the config's folder; created 0600 with a random key on first use).
    signing_key_env: str = "CAMPAIGN_MODEL_KEY"
    signing_key_file: str = "model-signing.key"
    signing_key: SecretStr | None = Field(None, exclude=True)

    @field_validator("tier_thresholds")
    @classmethod
    def _thresholds_are_probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold for tier {name!r} must be between 0 and 1")
        return value


class RecommenderConfig(_Section):
    """Hybrid recommender: implicit-feedback weights, blend and filters."""

    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "cart": 3.0, "purchase": 5.0, "search": 0.0}
    )
    half_life_days: float = Field(60.0, gt=0)
    k: int = Field(10, ge=1, le=100)
    neighbours: int = Field(50, ge=1)
    content_weight: float = Field(0.1, ge=0, le=1)
    popularity_weight: float = Field(0.3, ge=0)
    buy_again_weight: float = Field(100.0, ge=0)
    profile_power: float = Field(0.25, ge=0, le=1)
    max_per_category: int = Field(3, ge=1)
    allow_repurchase: bool = False
    repurchase_window_days: int = Field(60, ge=0)
    excluded_categories: tuple[str, ...] = ()
    # `campaign train recommend`: the tournament judges on the last validation_days
    # before T, on at most tournament_users users (a fixed random sample).
    validation_days: int = Field(28, ge=7, le=365)
    tournament_users: int = Field(5000, ge=100)


class QuietHours(_Section):
    """Local-time window in which messages may be sent (start inclusive, end exclusive).

    ``start > end`` is a window across midnight; ``start == end`` means no quiet hours.
    """

    start: time = time(8, 0)
    end: time = time(21, 0)


class DeliveryConfig(_Section):
    """Sender behaviour shared by every channel."""

    concurrency: int = Field(64, ge=1, le=4096)
    batch_size: int = Field(200, ge=1, le=10_000)
    max_attempts: int = Field(6, ge=1, le=50)
    backoff_base_seconds: float = Field(30.0, gt=0)
    backoff_max_seconds: float = Field(3600.0, gt=0)
    timeout_seconds: float = Field(10.0, gt=0)
    lease_seconds: int = Field(120, ge=5)
    message_expiry_hours: float = Field(48.0, gt=0)
    quiet_hours: QuietHours = QuietHours()
    # Per-medium defaults that beat ``quiet_hours``; SMS follows US TCPA hours (8am-9pm).
    quiet_hours_by_medium: dict[str, QuietHours] = Field(
        default_factory=lambda: {"sms": QuietHours(start=time(8, 0), end=time(21, 0))}
    )
    frequency_cap: dict[str, int] = Field(default_factory=lambda: {"email": 2, "sms": 1})
    frequency_window_days: int = Field(7, ge=1)
    poll_interval_seconds: float = Field(2.0, gt=0)
    http_clients: int = Field(8, ge=1, le=256)
    http_connections_per_client: int = Field(8, ge=1, le=256)
    unsubscribe_mailto: str | None = None


class ChannelConfig(_Section):
    """One provider. Secrets are named by environment variable, never stored here."""

    kind: ChannelKind
    medium: ChannelMedium = "email"
    url: str | None = None
    path: str | None = None
    from_address: str | None = None
    secret_env: str | None = None
    username_env: str | None = None
    rate_per_second: float = Field(50.0, gt=0)
    quiet_hours: QuietHours | None = None
    # Messages per provider request (SendGrid personalizations: up to 1000).
    batch_size: int = Field(1, ge=1, le=1000)
    status_callback_url: str | None = None
    starttls: bool = False
    # SMTP TLS: a PEM file of CAs trusted instead of the system's (relative to the config).
    ca_file: str | None = None
    secret: SecretStr | None = Field(None, exclude=True)
    username: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _needs_target(self) -> ChannelConfig:
        if self.kind == "file" and not self.path:
            raise ValueError("a 'file' channel needs 'path'")
        if self.kind in ("webhook", "twilio", "sendgrid", "smtp") and not self.url:
            raise ValueError(f"a {self.kind!r} channel needs 'url'")
        if self.ca_file and self.kind != "smtp":
            raise ValueError("'ca_file' applies to smtp channels only")
        if self.ca_file and not (self.starttls or (self.url or "").startswith("smtps://")):
            raise ValueError("'ca_file' needs TLS: an smtps:// url or starttls = true")
        return self


class ServerConfig(_Section):
    """The response webhook server (docs/responses.md)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    secret_envs: tuple[str, ...] = ()
    # Keys of unsubscribe links, never given to a provider: the first signs, all
    # verify (rotation). None set: the database's own installation key.
    link_secret_envs: tuple[str, ...] = ()
    # Also verify links of the format used before link keys (signed then with the
    # installation key or a secret_envs secret); turn off once those have aged out.
    accept_legacy_links: bool = True
    max_body_bytes: int = Field(1_000_000, ge=1024)
    # Standard Webhooks timestamps further than this from our clock are refused.
    signature_tolerance_seconds: int = Field(300, ge=1, le=3600)
    # Twilio signs callbacks with the account's auth token (default: the first
    # twilio channel's secret); SendGrid events are accepted with this shared secret.
    twilio_auth_token_env: str | None = None
    sendgrid_secret_env: str | None = None
    # SendGrid's Signed Event Webhook: the verification key it shows (public, base64).
    sendgrid_verification_key: str | None = None
    # Most events one database transaction of the response writer holds.
    write_batch_events: int = Field(1000, ge=1, le=100_000)
    # PostgreSQL: also wait for the WAL flush when committing opens/clicks/deliveries
    # (unsubscribes, complaints and bounces always wait).
    durable_tracking_commits: bool = False
    secrets: tuple[SecretStr, ...] = Field((), exclude=True)
    link_secrets: tuple[SecretStr, ...] = Field((), exclude=True)
    twilio_auth_token: SecretStr | None = Field(None, exclude=True)
    sendgrid_secret: SecretStr | None = Field(None, exclude=True)


class ConsoleConfig(_Section):
    """The marketer's console (``campaign console``, docs/console.md)."""

    host: str = "127.0.0.1"
    port: int = Field(8081, ge=1, le=65535)
    # The key that signs session cookies; None: the database's own installation key.
    secret_env: str | None = None
    # A session ends this long after its login.
    session_hours: int = Field(12, ge=1, le=24 * 30)
    # Failed logins per account name (and per client address) within the window.
    login_attempts: int = Field(5, ge=1, le=1000)
    login_window_seconds: int = Field(300, ge=1, le=86_400)
    # The seed list the editor's "Send a test" button sends to (one address a line, as
    # `campaign run --test-to FILE`), relative to the config file; None: no button.
    test_seed_file: str | None = None
    secret: SecretStr | None = Field(None, exclude=True)


class ResponsesConfig(_Section):
    """How inbound responses are read (docs/responses.md)."""

    # Inbound SMS opt-out words; None: the built-in English and Chinese-carrier lists
    # (campaign.common.optout.STOP_WORDS_BY_LOCALE). Setting it replaces them.
    stop_words: tuple[str, ...] | None = None

    @field_validator("stop_words")
    @classmethod
    def _words(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not any(word.strip() for word in value):
            raise ValueError("needs at least one word (omit it for the built-in lists)")
        return value


class ScheduleConfig(_Section):
    """When a campaign runs: a five-field cron expression in a timezone."""

    cron: str = "0 10 * * *"
    timezone: str = "Asia/Shanghai"

    _tz = field_validator("timezone")(classmethod(lambda cls, v: _check_timezone(v)))

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("must be a cron expression with five fields")
        return value


RankBy = Literal["risk", "uplift", "value"]


class AudienceConfig(_Section):
    """Who a campaign targets, and in which order (docs/planning.md "Targeting")."""

    min_risk: float = Field(0.5, ge=0, le=1)
    max_risk: float = Field(1.0, ge=0, le=1)
    tiers: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    # The order the recipient cap walks: churn risk, the campaign's predicted uplift, or
    # expected profit ([shop] gross_margin x revenue uplift - expected coupon cost).
    rank_by: RankBy = "risk"
    # Never message predicted sleeping dogs (uplift below -[uplift] delta). None: yes
    # when ranking by uplift or value, no when ranking by risk.
    exclude_sleeping_dogs: bool | None = None
    # Share of the eligible customers outside the audience also randomised (half
    # treated, half held out), so the uplift model learns where the audience never goes.
    learning_share: float = Field(0.0, ge=0, le=1)

    @property
    def excludes_sleeping_dogs(self) -> bool:
        """Whether predicted sleeping dogs are kept out (the default follows rank_by)."""
        if self.exclude_sleeping_dogs is None:
            return self.rank_by != "risk"
        return self.exclude_sleeping_dogs


class OfferConfig(_Section):
    """Coupon policy: percent off by risk tier, minimum order, validity."""

    percent_off_by_tier: dict[str, int] = Field(
        default_factory=lambda: {"high": 20, "medium": 10, "low": 5}
    )
    high_value_bonus_percent: int = Field(5, ge=0, le=50)
    min_order: str = "0"
    valid_days: int = Field(14, ge=1, le=365)
    # Letters/digits in front of every code so the shop can tell campaigns apart.
    code_prefix: str = Field("CB", pattern=r"^[A-Z0-9]{0,6}$")

    @field_validator("percent_off_by_tier")
    @classmethod
    def _percents(cls, value: dict[str, int]) -> dict[str, int]:
        for tier, percent in value.items():
            if not 0 <= percent <= 90:
                raise ValueError(f"percent off for tier {tier!r} must be between 0 and 90")
        return value

    @field_validator("min_order")
    @classmethod
    def _min_order_is_money(cls, value: str) -> str:
        # The shape only: whether its decimals fit the currency is checked by Config,
        # which knows [shop] currency.
        if not re.fullmatch(r"\d{1,12}(\.\d{1,6})?", value.strip()):
            raise ValueError("must be an amount like \"99.00\" in the shop currency")
        return value.strip()


class TemplatesConfig(_Section):
    """Marketers' templates: where they live and the limits every render obeys."""

    dir: str = "templates"
    max_sms_segments: int = Field(2, ge=1, le=10)
    max_subject_chars: int = Field(80, ge=10, le=300)
    render_timeout_seconds: float = Field(2.0, gt=0, le=60)
    max_output_bytes: int = Field(500_000, ge=1_000, le=10_000_000)


class AttributionConfig(_Section):
    """How responses and purchases are credited to messages (docs/measurement.md)."""

    # A purchase within this many days of the send (held-out users: of their planned
    # "would have been sent" time) counts as a conversion of that message.
    window_days: int = Field(14, ge=1, le=365)


class ExperimentsConfig(_Section):
    """Variant choice by Thompson sampling (docs/measurement.md)."""

    # Every enabled variant keeps at least this share of a run's treated users.
    exploration_floor: float = Field(0.05, ge=0.0, le=1.0)
    # Beta prior pseudo-counts of every variant's conversion rate (1, 1: uniform).
    prior_successes: float = Field(1.0, gt=0)
    prior_failures: float = Field(1.0, gt=0)


class UpliftConfig(_Section):
    """The uplift model: whom a message changes (docs/uplift.md)."""

    # Training refuses a campaign with fewer treated or held-out users than these.
    min_treated: int = Field(200, ge=10)
    min_control: int = Field(200, ge=10)
    # Segments: persuadable above +delta, sleeping dog below -delta (outcome units: a
    # probability difference for converted/visited, major currency units for revenue).
    delta: float = Field(0.01, ge=0)
    # Between the two, a sure thing when the predicted rate without the message is at
    # least this (revenue: at least this many currency units), else a lost cause.
    base_rate: float = Field(0.1, ge=0)
    # Share of the experiment rows kept aside to choose between the tree and the
    # challenger by Qini.
    validation_share: float = Field(0.3, gt=0.05, lt=0.8)
    # The readable tree.
    max_depth: int = Field(3, ge=1, le=6)
    min_samples_leaf: int = Field(100, ge=5)
    # For rare outcomes: leaves large enough that each expects at least this many
    # customers with the outcome in the smaller group (0: min_samples_leaf alone).
    min_responders_per_leaf: int = Field(0, ge=0)
    # Also try the tree with leaves expecting 10 such customers, and keep whichever
    # ranks the held-back rows better by Qini.
    tune_leaf_size: bool = True
    # Seed of the validation split and the challenger.
    random_state: int = 0
    # Extra columns of users.csv used as model inputs: numbers, and categories (one
    # input per value seen in training, at most max_categories per attribute).
    numeric_attributes: tuple[str, ...] = ()
    categorical_attributes: tuple[str, ...] = ()
    max_categories: int = Field(20, ge=1, le=200)

    @model_validator(mode="after")
    def _distinct_attributes(self) -> UpliftConfig:
        both = set(self.numeric_attributes) & set(self.categorical_attributes)
        if both:
            raise ValueError(
                f"attribute(s) {', '.join(sorted(both))} named both numeric and categorical")
        return self


EngineKind = Literal["sql", "spark"]
# Debian's JDBC drivers (libpostgresql-jdbc-java, libmariadb-java,
# libxerial-sqlite-jdbc-java): the default `jars` of the Spark engine, where present.
DEFAULT_JDBC_JARS: tuple[str, ...] = (
    "/usr/share/java/postgresql.jar",
    "/usr/share/java/mariadb-java-client.jar",
    "/usr/share/java/sqlite-jdbc.jar",
)
_MEMORY = re.compile(r"^[1-9][0-9]*[kmgt]?$", re.IGNORECASE)
_MASTER = re.compile(r"^(local(\[(\*|[1-9][0-9]*)\])?|(spark|sc|yarn|k8s)(://.+)?)$")


class EngineConfig(_Section):
    """Where the batch runs: the database's own SQL, or Apache Spark (docs/operations.md).

    With ``kind = "spark"`` the profile features, the churn snapshots and scores and the
    recommender's interaction matrix are computed on Spark (the ``spark`` extra);
    planning, delivery and responses stay on the database.
    """

    kind: EngineKind = "sql"
    # local[*] on one machine; spark://host:7077, yarn, k8s://… or Spark Connect sc://host.
    master: str = "local[*]"
    # "database" (the events table over JDBC) or Parquet files/folders of the events
    # import's columns.
    events: Literal["database"] | tuple[str, ...] = "database"
    # JDBC driver jars for spark.jars; None: Debian's jars under /usr/share/java.
    jars: tuple[str, ...] | None = None
    driver_memory: str = "1g"
    # Partitions of the JDBC read of the events table (split on its id).
    partitions: int = Field(8, ge=1, le=100_000)
    app_name: str = Field("campaign", min_length=1)

    @field_validator("master")
    @classmethod
    def _known_master(cls, value: str) -> str:
        if not _MASTER.match(value):
            raise ValueError(
                f"{value!r} is not a Spark master (local[*], local[N], spark://host:port, "
                "yarn, k8s://…, or sc://host for Spark Connect)"
            )
        return value

    @field_validator("driver_memory")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        if not _MEMORY.match(value):
            raise ValueError(f"{value!r} is not a JVM memory size (e.g. 512m, 1g, 4g)")
        return value

    @field_validator("events")
    @classmethod
    def _parquet_paths(
        cls, value: Literal["database"] | tuple[str, ...]
    ) -> Literal["database"] | tuple[str, ...]:
        if value != "database" and not value:
            raise ValueError('needs "database" or at least one Parquet path')
        return value

    def jar_paths(self) -> tuple[str, ...]:
        """The jars Spark is given: ``jars`` when set, else the Debian ones that exist."""
        from pathlib import Path

        if self.jars is not None:
            return self.jars
        return tuple(path for path in DEFAULT_JDBC_JARS if Path(path).is_file())


IngestTarget = Literal["users", "products", "events"]


class IngestQueryConfig(_Section):
    """A read-only query against the shop's own database, loaded into one of our tables.

    The query's result columns must be those of the target's CSV contract (DESIGN.md,
    docs/import.md); rows go through the same validation as ``campaign import``. The
    URL is a SQLAlchemy URL; put its password in ``url_env`` (the *name* of an
    environment variable holding the whole URL) or in libpq's ``PGPASSWORD``.
    """

    target: IngestTarget
    query: str
    url: str | None = None
    url_env: str | None = None
    cron: str = "*/15 * * * *"

    @model_validator(mode="after")
    def _needs_url(self) -> IngestQueryConfig:
        if not (self.url or self.url_env):
            raise ValueError("an ingest query needs 'url' or 'url_env'")
        if len(self.cron.split()) != 5:
            raise ValueError("cron must be a cron expression with five fields")
        return self


class IngestConfig(_Section):
    """Scheduled ingest: CSV drops from a folder and queries against the shop's database.

    A file in ``folder`` is imported once (by content hash) when its name starts with
    its kind: ``users*.csv``, ``products*.csv``, ``events*.csv``, ``responses*.csv``;
    then it moves to ``done/`` or ``rejected/`` beside it (rejected rows in
    ``*.rejects.csv``).
    """

    folder: str | None = None
    cron: str = "*/5 * * * *"
    # Files younger than this may still be being written: wait for the next pass.
    settle_seconds: float = Field(5.0, ge=0)
    queries: tuple[IngestQueryConfig, ...] = ()


class DaemonConfig(_Section):
    """``campaign daemon`` / ``campaign worker`` (docs/operations.md)."""

    health_host: str = "127.0.0.1"
    # /healthz and /metrics; 0 turns the health server off.
    health_port: int = Field(9108, ge=0, le=65535)
    # First SIGTERM: stop claiming, finish in-flight sends, release leases within this.
    shutdown_grace_seconds: float = Field(30.0, gt=0)
    # How often a follower tries the leader lock (a dead leader is replaced within it).
    leader_poll_seconds: float = Field(5.0, gt=0)
    # A slot missed while no daemon ran is still run at start when this young; else missed.
    missed_slot_grace_seconds: float = Field(3600.0, ge=0)
    # Senders refresh their heartbeat this often; channel rates are split among live ones.
    heartbeat_seconds: float = Field(5.0, gt=0)
    # Run the response webhook server ([server]) inside the daemon.
    serve_responses: bool = False
    retrain: bool = True
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    ingest: IngestConfig = IngestConfig()


class VariantConfig(_Section):
    """One message variant: a template set (folder under ``templates/``) and its offer."""

    name: str
    template: str
    offer: bool = True
    enabled: bool = True
    # None: the campaign's setting, else the recommender's allow_repurchase.
    allow_repurchase: bool | None = None


class CampaignConfig(_Section):
    """One scheduled campaign."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    schedule: ScheduleConfig = ScheduleConfig()
    audience: AudienceConfig = AudienceConfig()
    channels: tuple[str, ...] = ("email",)
    variants: tuple[VariantConfig, ...] = ()
    offer: OfferConfig = OfferConfig()
    holdout_share: float = 0.1
    cooldown_days: int = Field(14, ge=0)
    max_recipients: int | None = Field(None, ge=1)
    coupon_budget: int | None = Field(None, ge=0)
    paused: bool = False
    # None: the recommender's allow_repurchase; a variant may override it.
    allow_repurchase: bool | None = None

    @field_validator("holdout_share")
    @classmethod
    def _holdout_bounds(cls, value: float) -> float:
        if not 0.0 <= value <= 0.5:
            raise ValueError("must be between 0 and 0.5")
        return value


class ClockConfig(_Section):
    """Pins the default as-of time of one-shot commands (demos, replays, audits).

    Every command that takes ``--as-of`` defaults to it (else to now): it picks what
    they look at (scores, features, recommendations, reports). It never decides *when*
    something happens: a ``campaign run`` stamps its messages (due, expiry) and coupons
    (validity) with the real clock, so a pinned clock can neither queue a run that
    expires unsent nor one that never becomes due. The daemon, the sender and the
    server use the real clock throughout.
    """

    as_of: datetime | None = None

    @field_validator("as_of")
    @classmethod
    def _aware_utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# What a secret is for: the commands demand secrets by these uses.
# The default template sets; marketers point ``[templates] dir`` at their own copy.
