"""Model artifacts are signed: a pickle from the database is only loaded if it verifies.

A model artifact is a pickle, and unpickling runs code: whoever can write a row of
``model_versions`` could otherwise run code in every process that scores. Each
artifact therefore carries an HMAC-SHA256 over its kind and bytes
(``model_versions.artifact_signature``), keyed with a secret that is *not* in the
database: ``[model] signing_key_env`` (default ``CAMPAIGN_MODEL_KEY``) when set, else
the key file ``[model] signing_key_file`` (default ``model-signing.key`` beside
``config.toml``), which the first process that needs it creates with a random
256-bit key, mode 0600. So the demo needs nothing exported, and every host sharing
a PostgreSQL database needs the same key (set the variable, or copy the file).

Signatures read ``hmac-sha256:<key id>:<hex>``; the key id (first 8 hex digits of
the key's SHA-256) tells which key signed a row without revealing it, so a refusal
can say "signed with another key" apart from "changed".
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from campaign.common.artifact_signing import (
    SCHEME,
    key_id,
    sign_artifact,
    signed_key_id,
    verifies,
)
from campaign.common.errors import ModelError
from campaign.config import ModelConfig

# The signature itself is pure and shared with the recommender's model versions.
__all__ = [
    "SCHEME", "key_id", "model_key", "read_key_file", "sign_artifact", "signed_key_id",
    "verifies",
]


def model_key(config: ModelConfig) -> bytes:
    """The model signing key: ``config.signing_key`` (from the environment) or the key
    file, which is created (random, mode 0600) when it does not exist yet.

    Raises:
        ModelError: the key file cannot be read or created, or is empty.
    """
    if config.signing_key is not None:
        value = config.signing_key.get_secret_value()
        if value:
            return value.encode()
    return read_key_file(Path(config.signing_key_file), create=True)


def read_key_file(path: Path, *, create: bool = False) -> bytes:
    """The key in ``path`` (its text, stripped); with ``create``, make it first if missing.

    Creation is safe against a concurrent first start: the key is written to a private
    temporary file and linked into place, so a second process either wins the link or
    reads the first one's complete file.

    Raises:
        ModelError: the file cannot be read or created, or holds no key.
    """
    if create and not path.exists():
        _create_key_file(path)
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ModelError(
            f"model signing key file {path}: cannot read it ({exc.strerror or exc}); "
            "set CAMPAIGN_MODEL_KEY or [model] signing_key_file"
        ) from None
    if not text:
        raise ModelError(f"model signing key file {path} is empty")
    return text.encode()


def _create_key_file(path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secrets.token_hex(32) + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process created it first: use theirs
    except OSError as exc:
        raise ModelError(
            f"model signing key file {path}: cannot create it ({exc.strerror or exc}); "
            "set CAMPAIGN_MODEL_KEY or [model] signing_key_file"
        ) from None
    finally:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass  # never created: the folder itself was the problem
