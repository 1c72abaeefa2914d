"""The configuration's shape: :class:`Config`, the whole file, over the sections of
:mod:`campaign.config.sections`.

:class:`Config` is the whole file; :mod:`campaign.config.loading` reads the file and
the ``CAMPAIGN_*`` environment into it. Nothing here reads a file or the environment
at import time.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import (
    Field,
    model_validator,
)

from campaign.common.errors import ConfigError
from campaign.common.shipped import templates_folder
from campaign.config.sections import (
    AttributionConfig,
    CampaignConfig,
    ChannelConfig,
    ClockConfig,
    ConsoleConfig,
    DaemonConfig,
    DatabaseConfig,
    DeliveryConfig,
    EngineConfig,
    ExperimentsConfig,
    ModelConfig,
    RecommenderConfig,
    ResponsesConfig,
    ServerConfig,
    ShopConfig,
    TemplatesConfig,
    UpliftConfig,
    _Section,
)

SHIPPED_TEMPLATES_DIR = templates_folder()

SECRET_USES = {
    "send": "send through the channel",
    "serve": "verify provider webhooks",
    "links": "sign unsubscribe links",
    "shop": "sign the shop's coupon webhook",
    "console": "sign console sessions",
}


class MissingSecret(_Section):
    """A secret the config names whose environment variable is unset or empty."""

    key: str
    env: str
    uses: tuple[str, ...]


def missing_secrets_error(
    source: str, missing_secrets: Iterable[MissingSecret], uses: Iterable[str]
) -> ConfigError | None:
    """One error naming every secret of ``missing_secrets`` needed for one of ``uses``
    (its variable, key and purpose), or None when none is."""
    wanted = set(uses)
    missing = [m for m in missing_secrets if wanted & set(m.uses)]
    if not missing:
        return None
    purposes = [", ".join(SECRET_USES[u] for u in m.uses if u in wanted) for m in missing]
    if len(missing) == 1:
        return ConfigError(
            source, missing[0].key,
            f"environment variable {missing[0].env} is not set (needed to {purposes[0]})",
        )
    listed = "; ".join(
        f"{m.env} ({m.key}, needed to {purpose})"
        for m, purpose in zip(missing, purposes, strict=True)
    )
    return ConfigError(source, "", f"environment variables not set: {listed}")


class Config(_Section):
    """The whole configuration; ``source`` is the file it came from (or ``<defaults>``)."""

    shop: ShopConfig = ShopConfig()
    database: DatabaseConfig = DatabaseConfig()
    model: ModelConfig = ModelConfig()
    recommender: RecommenderConfig = RecommenderConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    server: ServerConfig = ServerConfig()
    console: ConsoleConfig = ConsoleConfig()
    responses: ResponsesConfig = ResponsesConfig()
    clock: ClockConfig = ClockConfig()
    campaigns: tuple[CampaignConfig, ...] = ()
    templates: TemplatesConfig = TemplatesConfig()
    attribution: AttributionConfig = AttributionConfig()
    experiments: ExperimentsConfig = ExperimentsConfig()
    uplift: UpliftConfig = UpliftConfig()
    daemon: DaemonConfig = DaemonConfig()
    engine: EngineConfig = EngineConfig()
    source: str = Field("<defaults>", exclude=True)
    base_dir: str = Field(".", exclude=True)
    missing_secrets: tuple[MissingSecret, ...] = Field((), exclude=True)

    def require_secrets(self, *uses: str) -> None:
        """Fail unless every secret named for one of ``uses`` (:data:`SECRET_USES`) is set.

        Raises:
            ConfigError: one error naming every missing variable, its key and its use.
        """
        error = missing_secrets_error(self.source, self.missing_secrets, uses)
        if error is not None:
            raise error

    @model_validator(mode="after")
    def _campaigns_are_consistent(self) -> Config:
        # Imported here: babel's data is not needed to start the command line.
        from campaign.common.money import minor_digits, parse_amount

        try:
            minor_digits(self.shop.currency)
        except ValueError as exc:
            raise ValueError(f"shop.currency: {exc}") from None
        seen: set[str] = set()
        for index, campaign in enumerate(self.campaigns):
            try:
                parse_amount(campaign.offer.min_order, self.shop.currency)
            except ValueError as exc:
                raise ValueError(f"campaigns[{index}].offer.min_order: {exc}") from None
            if campaign.audience.rank_by == "value" and self.shop.gross_margin is None:
                raise ValueError(
                    f"campaigns[{index}].audience.rank_by: 'value' ranks by expected profit "
                    "and needs [shop] gross_margin (the share of revenue that is profit, "
                    "0 to 1)"
                )
            if campaign.name in seen:
                raise ValueError(f"campaign name {campaign.name!r} is used twice")
            seen.add(campaign.name)
            for channel in campaign.channels:
                if channel not in self.channels:
                    known = ", ".join(sorted(self.channels)) or "none configured"
                    raise ValueError(
                        f"campaign {campaign.name!r} names unknown channel {channel!r}"
                        f" (known: {known})"
                    )
        for name, settings in self.channels.items():
            ca_file = self.resolve_path(settings.ca_file) if settings.ca_file else None
            if ca_file is not None and not ca_file.is_file():
                raise ValueError(f"channels.{name}.ca_file: no such file {str(ca_file)!r}")
        return self

    def campaign(self, name: str) -> CampaignConfig:
        """The campaign called ``name``; raises :class:`campaign.common.errors.NotFound`."""
        from campaign.common.errors import NotFound

        for campaign in self.campaigns:
            if campaign.name == name:
                return campaign
        raise NotFound("campaign", name, [c.name for c in self.campaigns])

    def resolve_path(self, path: str) -> Path:
        """A path from the config, relative to the config file's folder."""
        candidate = Path(path)
        return candidate if candidate.is_absolute() else Path(self.base_dir) / candidate

    def templates_folder(self) -> Path:
        """The one answer to "where are the template sets?", for every command.

        ``[templates] dir`` when the config sets it (relative to the config's folder):
        it must be a folder, or this is a config error, never a silent fallback. When
        the config leaves it out, ``templates/`` beside the config if there is one, else
        the default sets shipped with the product.

        Raises:
            ConfigError: ``[templates] dir`` names something that is not a folder.
        """

        folder = self.resolve_path(self.templates.dir)
        if "dir" in self.templates.model_fields_set:
            if not folder.is_dir():
                what = "is not a folder" if folder.exists() else "does not exist"
                raise ConfigError(
                    self.source, "templates.dir",
                    f"{folder} {what} (fix the path, or leave the key out to use the "
                    "default templates)",
                )
            return folder
        return folder if folder.is_dir() else SHIPPED_TEMPLATES_DIR

    def database_url(self) -> str:
        """The database URL with relative SQLite paths anchored at the config's folder."""
        url = self.database.url
        prefix = "sqlite:///"
        if url.startswith(prefix) and not url.startswith("sqlite:////"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:" and not Path(rest).is_absolute():
                return prefix + str((Path(self.base_dir) / rest).resolve())
        return url
