"""Typed configuration: the schema (:mod:`campaign.config.schema`) and its loading
(:mod:`campaign.config.loading`, ``config.toml`` plus ``CAMPAIGN_*`` overrides).

Only entry points call :func:`load_config`; everything else receives the frozen
sub-config it needs. Import from here: both halves are re-exported.
"""

from __future__ import annotations

from campaign.config.loading import load_config
from campaign.config.schema import (
    SECRET_USES,
    SHIPPED_TEMPLATES_DIR,
    Config,
    MissingSecret,
)
from campaign.config.sections import (
    DEFAULT_CONFIG_FILE,
    DEFAULT_DATABASE_URL,
    ENV_PREFIX,
    AttributionConfig,
    AudienceConfig,
    CampaignConfig,
    ChannelConfig,
    ClockConfig,
    ConsoleConfig,
    DaemonConfig,
    DatabaseConfig,
    DeliveryConfig,
    EngineConfig,
    ExperimentsConfig,
    IngestConfig,
    IngestQueryConfig,
    ModelConfig,
    OfferConfig,
    QuietHours,
    RecommenderConfig,
    ResponsesConfig,
    ScheduleConfig,
    ServerConfig,
    ShopConfig,
    TemplatesConfig,
    UpliftConfig,
    VariantConfig,
)

__all__ = [
    "AttributionConfig",
    "AudienceConfig",
    "CampaignConfig",
    "ChannelConfig",
    "ClockConfig",
    "Config",
    "ConsoleConfig",
    "DEFAULT_CONFIG_FILE",
    "DEFAULT_DATABASE_URL",
    "DaemonConfig",
    "DatabaseConfig",
    "DeliveryConfig",
    "EngineConfig",
    "ENV_PREFIX",
    "ExperimentsConfig",
    "IngestConfig",
    "IngestQueryConfig",
    "MissingSecret",
    "ModelConfig",
    "OfferConfig",
    "QuietHours",
    "RecommenderConfig",
    "ResponsesConfig",
    "SECRET_USES",
    "SHIPPED_TEMPLATES_DIR",
    "ScheduleConfig",
    "ServerConfig",
    "ShopConfig",
    "TemplatesConfig",
    "UpliftConfig",
    "VariantConfig",
    "load_config",
]
