"""The console's routes against a real SQLite file: who may do what, sessions, CSRF, the
login rate limit, and the campaigns page with its pause switch."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from campaign.app.accounts import disable_account, reset_account
from campaign.db.console import AuditEntry
from campaign.db.pauses import is_paused, pause_history
from tests.console_helpers import (
    NOW,
    PASSWORD,
    Shop,
    client_for,
    console_app,
    csrf_of,
    login,
    make_shop,
    token,
)

FILE = "winback/en/email.txt"


@pytest.fixture
def shop(tmp_path: Path, console_template: Path) -> Iterator[Shop]:
    made = make_shop(tmp_path, console_template)
    yield made
    made.engine.dispose()


# (method, path, form, the roles allowed): the matrix of docs/console.md, route by route.
ROUTES = [
    ("GET", "/", None, {"marketer", "analyst", "operator"}),
    ("GET", "/campaigns/winback/audience", None, {"marketer", "analyst", "operator"}),
    ("GET", "/templates", None, {"marketer", "analyst", "operator"}),
    ("GET", f"/templates/file?name={FILE}", None, {"marketer", "analyst", "operator"}),
    ("GET", f"/templates/history?name={FILE}", None, {"marketer", "analyst", "operator"}),
    ("GET", f"/templates/version?name={FILE}&version=1", None,
     {"marketer", "analyst", "operator"}),
    ("GET", "/activity", None, {"marketer", "analyst", "operator"}),
    ("GET", "/report", None, {"marketer", "analyst", "operator"}),
    ("GET", "/report?view=page", None, {"marketer", "analyst", "operator"}),
    ("GET", "/report/csv?table=funnel", None, {"marketer", "analyst", "operator"}),
    ("GET", "/models", None, {"analyst", "operator"}),
    ("GET", "/accounts", None, {"operator"}),
    ("GET", "/outbox", None, {"operator"}),
    ("POST", "/outbox/requeue", {"campaign": ""}, {"operator"}),
    ("POST", "/templates/check", {"name": FILE, "source": "Hi"}, {"marketer", "operator"}),
    ("POST", "/templates/save", {"name": FILE, "source": "x"}, {"marketer", "operator"}),
    ("POST", "/templates/revert", {"name": FILE, "version": "1"}, {"marketer", "operator"}),
    ("POST", "/templates/test-send", {"name": FILE}, {"marketer", "operator"}),
    ("POST", "/campaigns/winback/pause", {"reason": "test"}, {"operator"}),
    ("POST", "/campaigns/winback/resume", {}, {"operator"}),
    ("POST", "/logout", {}, {"marketer", "analyst", "operator"}),
]


def _call(client, method: str, path: str, form: dict[str, str] | None, csrf: str | None):  # type: ignore[no-untyped-def]
    if method == "GET":
        return client.get(path)
    data = dict(form or {})
    if csrf is not None:
        data["csrf"] = csrf
    return client.post(path, data=data)


@pytest.mark.parametrize("role", ["marketer", "analyst", "operator"])
def test_every_route_lets_exactly_its_roles_in(shop: Shop, role: str) -> None:
    wrong = []
    with client_for(shop, role) as client:
        csrf = token(client)
        for method, path, form, roles in ROUTES:
            response = _call(client, method, path, form, csrf)
            denied = response.status_code == 403 and f"the {role} role cannot" in response.text
            if denied == (role in roles) or response.status_code == 401:
                wrong.append(f"{method} {path}: {response.status_code}")
    assert wrong == [], f"{role}: {wrong}"


def test_nobody_logged_in_reaches_no_route(shop: Shop) -> None:
    with client_for(shop) as client:
        anonymous = csrf_of(client.get("/login").text)
        for method, path, form, _ in ROUTES:
            response = _call(client, method, path, form, anonymous)
            if method == "GET":
                assert response.status_code == 303, path
                assert response.headers["location"].startswith("/login?next="), path
            else:
                assert response.status_code == 401, path


def test_a_post_without_its_csrf_token_is_refused(shop: Shop) -> None:
    with client_for(shop, "operator") as client:
        for method, path, form, _ in ROUTES:
            if method != "POST":
                continue
            missing = _call(client, method, path, form, None)
            forged = _call(client, method, path, form, "forged")
            assert missing.status_code == forged.status_code == 403, path
            assert "CSRF" in missing.text
        assert client.get("/").status_code == 200  # still logged in: logout was refused too
    with shop.engine.connect() as connection:
        assert not is_paused(connection, "winback")


def test_login_without_csrf_token_is_refused(shop: Shop) -> None:
    with client_for(shop) as client:
        response = client.post("/login", data={"name": "operator", "password": PASSWORD})
    assert response.status_code == 403


def test_wrong_password_and_unknown_name_are_refused_alike(shop: Shop) -> None:
    with client_for(shop) as client:
        assert login(client, "marketer", "not the password") == 401
        assert login(client, "nobody", PASSWORD) == 401
        assert client.get("/").status_code == 303


def test_logins_are_rate_limited_per_name_and_client(shop: Shop) -> None:
    attempts = shop.config.console.login_attempts
    app = console_app(shop)
    with client_for(shop, app=app) as client:
        for _ in range(attempts):
            assert login(client, "marketer", "wrong password!") == 401
        # Even the right password waits now: the window has not passed.
        assert login(client, "marketer") == 429
        page = client.get("/login")
        assert page.status_code == 200
    with client_for(shop, app=app) as other:
        assert login(other, "marketer") == 429
        assert login(other, "analyst") == 429  # same client address: limited too


def test_logout_ends_the_session(shop: Shop) -> None:
    with client_for(shop, "marketer") as client:
        assert client.get("/").status_code == 200
        assert client.post("/logout", data={"csrf": token(client)}).status_code == 303
        assert client.get("/").status_code == 303


def test_disabling_or_resetting_an_account_ends_its_sessions(shop: Shop) -> None:
    with client_for(shop, "marketer") as marketer, client_for(shop, "analyst") as analyst:
        assert marketer.get("/").status_code == analyst.get("/").status_code == 200
        disable_account(shop.engine, "marketer", actor="test", now=NOW)
        reset_account(shop.engine, "analyst", "another long password", actor="test", now=NOW)
        assert marketer.get("/").status_code == analyst.get("/").status_code == 303
        assert login(marketer, "marketer") == 401
        assert login(analyst, "analyst", "another long password") == 303


def test_after_login_only_paths_of_this_site_are_followed(shop: Shop) -> None:
    with client_for(shop) as client:
        csrf = csrf_of(client.get("/login").text)
        response = client.post("/login", data={
            "csrf": csrf, "name": "analyst", "password": PASSWORD,
            "next": "//evil.example/steal",
        })
    assert response.status_code == 303
    assert response.headers["location"] == "/"


def test_pages_forbid_framing_and_foreign_scripts(shop: Shop) -> None:
    with client_for(shop, "analyst") as client:
        response = client.get("/")
    assert response.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    assert "campaign_console" in client.cookies or response.status_code == 200


def test_campaigns_page_shows_schedule_next_slot_and_state(shop: Shop) -> None:
    with client_for(shop, "analyst") as client:
        page = client.get("/").text
    assert "0 10 * * *" in page
    assert "Next slot" in page and " 10:00 UTC" in page
    assert 'data-state="running"' in page
    assert "Pause winback" not in page  # analysts see no switch


def test_an_operator_pauses_with_the_cli_switch_and_it_is_recorded(shop: Shop) -> None:
    with client_for(shop, "operator") as client:
        response = client.post(
            "/campaigns/winback/pause", data={"csrf": token(client), "reason": "wrong coupon"}
        )
        assert response.status_code == 303
        page = client.get("/").text
        assert 'data-state="paused"' in page and "wrong coupon" in page
        with shop.engine.connect() as connection:
            assert is_paused(connection, "winback")
            assert not is_paused(connection, "care")
            latest = pause_history(connection, 1)[0]
        assert (latest.campaign, latest.by, latest.reason) == ("winback", "operator",
                                                                "wrong coupon")
        client.post("/campaigns/winback/resume", data={"csrf": token(client)})
        with shop.engine.connect() as connection:
            assert not is_paused(connection, "winback")
            actions = connection.execute(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.target)
                .order_by(AuditEntry.id)
            ).all()
        assert actions[-2:] == [("operator", "campaign.paused", "winback"),
                                ("operator", "campaign.resumed", "winback")]
        activity = client.get("/activity").text
        assert "campaign.paused" in activity and "wrong coupon" in activity


def test_pausing_an_unknown_campaign_is_refused_with_the_known_names(shop: Shop) -> None:
    with client_for(shop, "operator") as client:
        response = client.post("/campaigns/winbak/pause", data={"csrf": token(client)})
    assert response.status_code == 404
    assert "did you mean &#39;winback&#39;?" in response.text


def test_the_accounts_page_lists_accounts_without_hashes(shop: Shop) -> None:
    with client_for(shop, "operator") as client:
        page = client.get("/accounts").text
    assert "marketer" in page and "analyst" in page
    assert "argon2" not in page


def test_the_outbox_page_shows_dead_messages_with_reasons_and_requeues_them(
    shop: Shop,
) -> None:
    from campaign.db.models import Message
    from tests.delivery_helpers import seed

    ids = seed(shop.engine, 3, channel="email")
    with shop.engine.begin() as connection:
        connection.execute(
            update(Message).where(Message.id.in_(ids[:2])).values(
                status="dead", last_error="email message 1: 550 mailbox alice@example.com unknown"
            )
        )
    with client_for(shop, "operator") as client:
        page = client.get("/outbox").text
        assert "550 mailbox alice@example.com unknown" in page  # operators see it unmasked
        assert "Requeue 2 dead message(s)" in page
        moved = client.post("/outbox/requeue", data={"csrf": token(client), "campaign": ""})
        assert moved.status_code == 200 and "Requeued 2 dead message(s)." in moved.text
        unknown = client.post("/outbox/requeue", data={"csrf": token(client),
                                                       "campaign": "winbak"})
        assert unknown.status_code == 404
    with shop.engine.connect() as connection:
        statuses = sorted(s for (s,) in connection.execute(select(Message.status)))
        requeued = connection.execute(
            select(AuditEntry.actor, AuditEntry.target, AuditEntry.detail)
            .where(AuditEntry.action == "outbox.requeued")
        ).all()
    assert statuses == ["queued", "queued", "queued"]
    assert [tuple(r) for r in requeued] == [("operator", "(all)", {"messages": 2})]
