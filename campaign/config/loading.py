"""Loading the configuration: ``config.toml`` plus ``CAMPAIGN_*`` environment overrides.

Precedence is flag > environment > file > default. Only entry points call
:func:`load_config`; everything else receives the frozen sub-config it needs.

Environment overrides:

* ``CAMPAIGN_DATABASE_URL`` sets ``database.url``.
* ``CAMPAIGN_<SECTION>__<KEY>`` sets any scalar key of a table section, e.g.
  ``CAMPAIGN_DELIVERY__CONCURRENCY=16``; the value is read as a TOML value when it
  parses as one (numbers, booleans), else as a string.
* Secrets never live in the file: a channel or the server names the *environment
  variable* that holds each secret (``secret_env = "CAMPAIGN_WEBHOOK_SECRET"``) and the
  value is read from the environment at load time, masked in ``repr``. A named
  variable that is unset (or empty) is recorded in ``Config.missing_secrets`` rather
  than failing the load: a command demands only the secrets its work uses, with
  :meth:`Config.require_secrets` (``import`` needs none, ``send`` needs the channels').
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)

from campaign.common.errors import ConfigError, ConfigErrors, did_you_mean
from campaign.config.schema import Config, MissingSecret, missing_secrets_error
from campaign.config.sections import (
    DEFAULT_CONFIG_FILE,
    ENV_PREFIX,
)


def _key_path(loc: tuple[int | str, ...]) -> str:
    """``('campaigns', 1, 'holdout_share')`` → ``campaigns[1].holdout_share``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function"):
            continue
        else:
            out += f".{part}" if out else str(part)
    return out


def _reason(error: Mapping[str, Any]) -> str:
    message = str(error["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        if message.startswith(prefix):
            message = message[len(prefix) :]
    return message[:1].lower() + message[1:]


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _apply_env_overrides(
    data: dict[str, Any], environ: Mapping[str, str], source: str
) -> tuple[dict[tuple[str, str], str], list[ConfigError]]:
    """Overlay ``CAMPAIGN_*`` variables on ``data``.

    Returns which variable set each ``(section, key)`` (so a bad value's error can name
    it) and the variables that cannot apply (a section that is not a table).
    """
    origins: dict[tuple[str, str], str] = {}
    errors: list[ConfigError] = []
    url = environ.get(f"{ENV_PREFIX}DATABASE_URL")
    if url:
        data.setdefault("database", {})["url"] = url
        origins[("database", "url")] = f"{ENV_PREFIX}DATABASE_URL"
    pattern = re.compile(rf"^{ENV_PREFIX}([A-Z0-9_]+?)__([A-Z0-9_]+)$")
    for name, raw in sorted(environ.items()):
        match = pattern.match(name)
        if match:
            section, key = match.group(1).lower(), match.group(2).lower()
            target = data.setdefault(section, {})
            if isinstance(target, dict):
                target[key] = _parse_env_value(raw)
                origins[(section, key)] = name
            else:
                errors.append(ConfigError(
                    source, section,
                    f"environment variable {name} cannot apply: {section} is not a table "
                    "(only scalar keys of [section] tables can be overridden)",
                ))
    return origins, errors


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The config model that holds the last key of ``loc`` (for "did you mean")."""
    model: type[BaseModel] | None = Config
    parts = list(loc[:-1])
    while parts and model is not None:
        part = parts.pop(0)
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        model, keyed = _inner_model(field.annotation)
        if keyed and parts:  # dict[str, Model]: the next part is the user's own name
            parts.pop(0)
    return model


def _inner_model(annotation: Any) -> tuple[type[BaseModel] | None, bool]:
    """The BaseModel inside ``annotation`` (``X``, ``X | None``, ``tuple[X, ...]``,
    ``dict[str, X]``) and whether it sits behind a dict key."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, False
    keyed = get_origin(annotation) is dict
    for arg in get_args(annotation):
        model, inner_keyed = _inner_model(arg)
        if model is not None:
            return model, keyed or inner_keyed
    return None, False


def _validation_errors(
    exc: ValidationError, source: str, origins: Mapping[tuple[str, str], str]
) -> list[ConfigError]:
    """One :class:`ConfigError` per pydantic error: key path, reason, and the hints."""
    out: list[ConfigError] = []
    for error in exc.errors():
        loc = tuple(error["loc"])
        reason = _reason(error)
        if error["type"] == "extra_forbidden" and loc:
            model = _model_at(loc)
            known = [
                name for name, f in (model.model_fields.items() if model else ())
                if not f.exclude
            ]
            hint = did_you_mean(str(loc[-1]), known)
            reason = "unknown key" + (hint or (f" (known: {', '.join(known)})" if known else ""))
        origin = origins.get((str(loc[0]), str(loc[1]))) if len(loc) >= 2 else None
        if origin:
            reason += f" (set by environment variable {origin})"
        out.append(ConfigError(source, _key_path(loc), reason))
    return out


def _resolve_secrets(data: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Put each named secret's value where the models expect it; record the unset ones
    (``data["missing_secrets"]``) for :meth:`Config.require_secrets`."""
    missing: list[dict[str, Any]] = []

    def read(env_name: Any, key: str, uses: tuple[str, ...]) -> str | None:
        if not isinstance(env_name, str) or not env_name:
            return None
        value = environ.get(env_name)
        if not value:
            missing.append({"key": key, "env": env_name, "uses": uses})
            return None
        return value

    for name, channel in (data.get("channels") or {}).items():
        if not isinstance(channel, dict):
            continue
        # The server verifies callbacks to /webhooks/<name> with the channel's secret.
        verifies = channel.get("kind") in ("webhook", "twilio", "sendgrid")
        secret = read(channel.get("secret_env"), f"channels.{name}.secret_env",
                      ("send", "serve") if verifies else ("send",))
        if secret is not None:
            channel["secret"] = secret
        username = read(channel.get("username_env"), f"channels.{name}.username_env",
                        ("send",))
        if username is not None:
            channel["username"] = username
    shop = data.get("shop")
    if isinstance(shop, dict):
        secret = read(shop.get("coupon_webhook_secret_env"), "shop.coupon_webhook_secret_env",
                      ("shop",))
        if secret is not None:
            shop["coupon_webhook_secret"] = secret
    server = data.get("server")
    if isinstance(server, dict):
        names = server.get("secret_envs") or []
        if isinstance(names, list | tuple):
            # Webhook secrets only verify (links have their own keys, below); they
            # still verify links of the format signed with them before.
            values = [read(env, f"server.secret_envs[{i}]", ("serve",))
                      for i, env in enumerate(names)]
            server["secrets"] = [v for v in values if v is not None]
        links = server.get("link_secret_envs") or []
        if isinstance(links, list | tuple) and links:
            # The first key signs: it must be set wherever links are made or checked; a
            # retired one whose variable is gone is simply no longer honoured.
            first = read(links[0], "server.link_secret_envs[0]", ("serve", "links"))
            rest = [environ.get(env) for env in links[1:] if isinstance(env, str)]
            server["link_secrets"] = [v for v in (first, *rest) if v]
        for key, target in (
            ("twilio_auth_token_env", "twilio_auth_token"),
            ("sendgrid_secret_env", "sendgrid_secret"),
        ):
            value = read(server.get(key), f"server.{key}", ("serve",))
            if value is not None:
                server[target] = value
    data["missing_secrets"] = missing


def _resolve_model_key(data: dict[str, Any], environ: Mapping[str, str], base_dir: Path) -> None:
    """The model signing key from its variable, and its key file anchored at the config's
    folder. The file is only read (or made) when a model is saved or loaded."""
    model = data.setdefault("model", {})
    if not isinstance(model, dict):
        return
    env_name = model.get("signing_key_env", "CAMPAIGN_MODEL_KEY")
    if isinstance(env_name, str) and environ.get(env_name):
        model["signing_key"] = environ[env_name]
    file = model.get("signing_key_file", "model-signing.key")
    if isinstance(file, str) and not Path(file).is_absolute():
        model["signing_key_file"] = str(base_dir / file)


def load_config(
    path: str | os.PathLike[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    secrets: Iterable[str] = (),
) -> Config:
    """Read, overlay and validate the configuration.

    With ``path=None`` the file ``./config.toml`` is used when it exists, otherwise the
    built-in defaults (a SQLite file ``campaign.db`` in the working directory).
    ``secrets`` names what the caller will do with secrets (``send``, ``serve``,
    ``links``, ``shop``): each one its work needs must be set, and a missing one is
    reported together with any invalid value, so one run shows every problem.

    Raises:
        ConfigError: unreadable file, bad TOML, an invalid value (with its key path) or
            a missing secret; :class:`ConfigErrors` when there are several.
    """
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    source = "<defaults>"
    base_dir = Path.cwd()
    if path is not None:
        file = Path(path)
        source = str(path)
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(source, "", "file not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(source, "", f"cannot read: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(source, "", f"not valid TOML: {exc}") from None
        base_dir = file.resolve().parent
    origins, errors = _apply_env_overrides(data, environ, source)
    if errors:
        _raise(source, errors)
    _resolve_secrets(data, environ)
    _resolve_model_key(data, environ, base_dir)
    data["source"] = source
    data["base_dir"] = str(base_dir)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        errors = _validation_errors(exc, source, origins)
        missing = missing_secrets_error(
            source, [MissingSecret(**m) for m in data["missing_secrets"]], secrets
        )
        _raise(source, errors if missing is None else [*errors, missing])
        raise  # unreachable: _raise always raises
    config.require_secrets(*secrets)
    return config


def _raise(source: str, errors: list[ConfigError]) -> None:
    """Raise the one error, or all of them at once."""
    if len(errors) == 1:
        raise errors[0] from None
    raise ConfigErrors(source, errors) from None

