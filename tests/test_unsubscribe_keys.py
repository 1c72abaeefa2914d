"""Unsubscribe links: their own rotating key, old links that keep working, no ambiguity.

Through the real app (starlette's TestClient), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from campaign.common.errors import ConfigError
from campaign.common.links import (
    legacy_unsubscribe_token,
    unsubscribe_query,
    unsubscribe_token,
    verify_unsubscribe_token,
)
from campaign.config import Config, load_config
from campaign.db.queries import installation_secret, is_suppressed, unsubscribe_key
from campaign.responses.app import create_app
from tests.factories import make_user
from tests.responses_helpers import NOW, SECRET, make_config, suppressions

ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@contextmanager
def _client(config: Config, engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(config, engine, clock=lambda: NOW),
                    base_url="https://shop.example") as client:
        yield client


def _user(session_factory: sessionmaker[Session], external_id: str = "u1") -> int:
    with session_factory() as session:
        user = make_user(session, external_id=external_id)
        session.commit()
        return user.id


def _link(key: bytes, user: str, channel: str = "email") -> str:
    return "/unsubscribe?" + unsubscribe_query(key, user, channel)


def test_rotating_the_link_key_keeps_old_links_until_the_key_is_removed(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    uid = _user(session_factory)
    old_link = _link(b"link-key-1", "u1")
    with _client(make_config(link_secrets=["link-key-2", "link-key-1"]), engine) as client:
        assert client.get(old_link).status_code == 200
        with engine.begin() as connection:
            # The first key signs new links.
            assert unsubscribe_key(connection, ["link-key-2", "link-key-1"]) == b"link-key-2"
    with _client(make_config(link_secrets=["link-key-2"]), engine) as client:
        assert client.get(old_link).status_code == 400  # removed: no longer honoured
        assert client.post(_link(b"link-key-2", "u1"), **ONE_CLICK).status_code == 200
    with engine.connect() as connection:
        assert is_suppressed(connection, uid, "email")


def test_the_provider_secret_never_signs_a_link(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    _user(session_factory)
    # A provider holds the server's webhook secret: it must not be able to mint links.
    minted = _link(SECRET.encode(), "u1")
    with _client(make_config(), engine) as client:
        assert client.post(minted, **ONE_CLICK).status_code == 400
    assert suppressions(engine) == []
    with engine.begin() as connection:
        key = unsubscribe_key(connection, [])
        assert key == installation_secret(connection, "unsubscribe") != SECRET.encode()


def test_links_sent_before_link_keys_keep_verifying(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    uid = _user(session_factory)
    with engine.begin() as connection:
        installation = installation_secret(connection, "unsubscribe")
    # The earlier format, signed by the first server secret (or the installation key).
    legacy = legacy_unsubscribe_token(SECRET.encode(), "u1", "email")
    by_secret = f"/unsubscribe?u=u1&c=email&t={legacy}"
    by_installation = (
        f"/unsubscribe?u=u1&c=sms&t={legacy_unsubscribe_token(installation, 'u1', 'sms')}"
    )
    with _client(make_config(link_secrets=["link-key-1"]), engine) as client:
        assert client.post(by_secret, **ONE_CLICK).status_code == 200
        assert client.post(by_installation, **ONE_CLICK).status_code == 200
        # Today's links signed with the installation key (before link keys were set) too.
        assert client.get(_link(installation, "u1")).status_code == 200
    with engine.connect() as connection:
        assert is_suppressed(connection, uid, "email") and is_suppressed(connection, uid, "sms")
    with _client(make_config(link_secrets=["link-key-1"], accept_legacy_links=False),
                 engine) as client:
        assert client.get(by_secret).status_code == 400


def test_unknown_channels_are_refused_whatever_their_length(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    _user(session_factory)
    with engine.begin() as connection:
        key = unsubscribe_key(connection, [])
    with _client(make_config(), engine) as client:
        for channel in ("push", "a-channel-name-over-sixteen-characters"):
            assert client.post(_link(key, "u1", channel), **ONE_CLICK).status_code == 400
    # (A long unknown channel used to become an "all channels" suppression.)
    assert suppressions(engine) == []


def test_ids_containing_colons_cannot_borrow_each_others_links() -> None:
    # "unsubscribe:a:b:c" was the signed text of both (a:b, c) and (a, b:c).
    assert legacy_unsubscribe_token(b"k", "a:b", "c") == legacy_unsubscribe_token(b"k", "a", "b:c")
    token = unsubscribe_token(b"k", "a:b", "c")
    assert verify_unsubscribe_token(b"k", "a:b", "c", token)
    assert not verify_unsubscribe_token(b"k", "a", "b:c", token)


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20),
       st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_a_token_verifies_only_for_its_own_user_and_channel(
    user: str, channel: str, other_user: str, other_channel: str
) -> None:
    token = unsubscribe_token(b"k", user, channel)
    assert verify_unsubscribe_token(b"k", user, channel, token)
    if (other_user, other_channel) != (user, channel):
        assert not verify_unsubscribe_token(b"k", other_user, other_channel, token)


def test_link_keys_come_from_the_environment_and_the_signing_one_must_be_set(
    tmp_path: object,
) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "config.toml"
    path.write_text('[server]\nlink_secret_envs = ["LINK_NEW", "LINK_OLD"]\n')
    config = load_config(path, {"LINK_NEW": "n", "LINK_OLD": "o"})
    assert [s.get_secret_value() for s in config.server.link_secrets] == ["n", "o"]
    # A retired key whose variable is gone is skipped; the signing one may not be.
    assert len(load_config(path, {"LINK_NEW": "n"}).server.link_secrets) == 1
    unsigned = load_config(path, {"LINK_OLD": "o"})
    with pytest.raises(ConfigError, match="LINK_NEW"):
        unsigned.require_secrets("links")
