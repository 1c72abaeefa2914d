"""The console's template editor against real files and a real SQLite file: the live lint
is the CLI's, saving lints first, writes atomically inside the folder only, keeps
versions, diffs and reverts."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from campaign.app.templates import lint_all
from campaign.db.console import AuditEntry, TemplateVersion
from tests.console_helpers import Shop, client_for, make_shop, token

FILE = "winback/en/email.txt"


@pytest.fixture
def shop(tmp_path: Path, console_template: Path) -> Iterator[Shop]:
    made = make_shop(tmp_path, console_template)
    yield made
    made.engine.dispose()


def _typo(text: str) -> str:
    return text.replace('{{ user.first_name or "there" }}', "{{ frist_name }}", 1)


def test_the_live_check_reports_the_clis_finding_at_its_line(shop: Shop) -> None:
    original = (shop.templates / FILE).read_text(encoding="utf-8")
    draft = _typo(original)
    with client_for(shop, "marketer") as client:
        answer = client.post(
            "/templates/check", data={"csrf": token(client), "name": FILE, "source": draft}
        ).json()
    mine = [i for i in answer["issues"] if i["here"] and i["severity"] == "error"]
    assert [(i["line"], i["message"]) for i in mine] == [
        (1, "'frist_name' is undefined (did you mean 'first_name'? write it user.first_name)")
    ]
    # The same line campaign templates lint prints once the draft is saved.
    (shop.templates / FILE).write_text(draft, encoding="utf-8")
    assert mine[0]["text"] in {str(i) for i in lint_all(shop.config)}


def test_the_live_preview_renders_the_draft_with_sample_or_real_data(shop: Shop) -> None:
    source = (shop.templates / FILE).read_text(encoding="utf-8")
    draft = source.replace("Warm regards,", "Cheers from the console,")
    with client_for(shop, "marketer") as client:
        answer = client.post("/templates/check", data={
            "csrf": token(client), "name": FILE, "source": draft, "locale": "en",
        }).json()
        sms = client.post("/templates/check", data={
            "csrf": token(client), "name": "winback/en/sms.txt",
            "source": (shop.templates / "winback/en/sms.txt").read_text(encoding="utf-8"),
        }).json()
        missing_user = client.post("/templates/check", data={
            "csrf": token(client), "name": FILE, "source": draft, "user": "U-nobody",
        }).json()
    preview = answer["preview"]
    assert "Cheers from the console," in preview["text"]
    assert preview["subject"] and preview["html"].lstrip().lower().startswith("<!doctype")
    assert "Alex Morgan" in preview["text"] or "Alex" in preview["text"]
    assert sms["preview"]["sms"]["segments"] >= 1
    assert sms["preview"]["subject"] is None
    assert missing_user["preview"] is None
    assert "user not found: U-nobody" in missing_user["error"]
    assert (shop.templates / FILE).read_text(encoding="utf-8") == source  # nothing written


def test_an_analyst_previews_with_sample_data_only(shop: Shop) -> None:
    with client_for(shop, "analyst") as client:
        page = client.get(f"/templates/file?name={FILE}")
        with_user = client.get(f"/templates/file?name={FILE}&user=U000001")
    assert page.status_code == 200 and "readonly" in page.text
    assert with_user.status_code == 400
    assert "sample data only" in with_user.text


def test_saving_lints_first_and_refuses_on_an_error(shop: Shop) -> None:
    path = shop.templates / FILE
    original = path.read_text(encoding="utf-8")
    with client_for(shop, "marketer") as client:
        response = client.post("/templates/save", data={
            "csrf": token(client), "name": FILE, "source": _typo(original),
        })
    assert response.status_code == 422
    assert "not saved" in response.text and "did you mean &#39;first_name&#39;?" in response.text
    assert 'data-line="1" class="ln marker error"' in response.text
    assert path.read_text(encoding="utf-8") == original
    with shop.engine.connect() as connection:
        assert connection.execute(select(TemplateVersion.id)).first() is None


def test_a_save_writes_the_file_keeps_versions_and_is_recorded(shop: Shop) -> None:
    path = shop.templates / FILE
    original = path.read_text(encoding="utf-8")
    edited = original.replace("Warm regards,", "Kind regards,")
    with client_for(shop, "marketer") as client:
        response = client.post("/templates/save", data={
            "csrf": token(client), "name": FILE, "source": edited.replace("\n", "\r\n"),
        })
        assert response.status_code == 303
        assert response.headers["location"].endswith("saved=2")
        assert path.read_text(encoding="utf-8") == edited  # LF kept, not CRLF
        assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
        history = client.get(f"/templates/history?name={FILE}").text
        assert 'data-version="2"' in history and 'data-version="1"' in history
        diff = client.get(f"/templates/version?name={FILE}&version=2").text
        assert "-Warm regards," in diff and "+Kind regards," in diff
        reverted = client.post("/templates/revert", data={
            "csrf": token(client), "name": FILE, "version": "1",
        })
        assert reverted.status_code == 303
    assert path.read_text(encoding="utf-8") == original
    with shop.engine.connect() as connection:
        versions = connection.execute(
            select(TemplateVersion.version, TemplateVersion.author, TemplateVersion.note)
            .order_by(TemplateVersion.version)
        ).all()
        audit = connection.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.target)
            .where(AuditEntry.action == "template.saved")
        ).all()
    assert versions == [
        (1, "marketer", "on disk before the first save"),
        (2, "marketer", "saved"),
        (3, "marketer", "revert to v1"),
    ]
    assert audit == [("marketer", "template.saved", FILE)] * 2


def test_a_file_changed_on_disk_since_it_was_opened_is_not_overwritten(shop: Shop) -> None:
    path = shop.templates / FILE
    with client_for(shop, "marketer") as client:
        page = client.get(f"/templates/file?name={FILE}").text
        opened = page.split('name="opened_sha" value="')[1].split('"')[0]
        path.write_text(path.read_text(encoding="utf-8") + "\nP.S. edited elsewhere\n",
                        encoding="utf-8")
        response = client.post("/templates/save", data={
            "csrf": token(client), "name": FILE, "opened_sha": opened,
            "source": path.read_text(encoding="utf-8").replace("P.S.", "PS"),
        })
    assert response.status_code == 400
    assert "changed on disk since you opened it" in response.text
    assert "P.S. edited elsewhere" in path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", [
    "../config.toml",
    "winback/../../config.toml",
    "/etc/passwd",
    "winback/en/../../../campaign.db",
    "winback\\en\\email.txt",
    "winback/en/.hidden",
    "_layouts/../../config.toml",
    "winback/en",
    "nosuchset/en/email.txt",
    "winback/en/email.txt/x",
])
def test_names_outside_the_templates_folder_are_refused(shop: Shop, name: str) -> None:
    config_text = shop.config_path.read_text(encoding="utf-8")
    with client_for(shop, "operator") as client:
        read = client.get("/templates/file", params={"name": name})
        saved = client.post("/templates/save", data={
            "csrf": token(client), "name": name, "source": "owned",
        })
        checked = client.post("/templates/check", data={
            "csrf": token(client), "name": name, "source": "owned",
        })
    assert read.status_code in (400, 404)
    assert saved.status_code in (400, 404)
    assert checked.status_code in (400, 404)
    assert shop.config_path.read_text(encoding="utf-8") == config_text
    assert "owned" not in (shop.folder / "campaign.db").read_bytes().decode("latin-1")


def test_symbolic_links_are_never_read_or_written(shop: Shop, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the server's secret", encoding="utf-8")
    linked = shop.templates / "care/en/email.txt"
    linked.unlink()
    os.symlink(secret, linked)
    folder_link = shop.templates / "winback/xx"
    os.symlink(shop.templates / "winback/en", folder_link)
    with client_for(shop, "operator") as client:
        read = client.get("/templates/file?name=care/en/email.txt")
        saved = client.post("/templates/save", data={
            "csrf": token(client), "name": "care/en/email.txt", "source": "replaced",
        })
        through_folder = client.post("/templates/save", data={
            "csrf": token(client), "name": "winback/xx/email.txt", "source": "replaced",
        })
    assert read.status_code == 400 and "symbolic link" in read.text
    assert "the server&#39;s secret" not in read.text
    assert saved.status_code == 400 and through_folder.status_code == 400
    assert secret.read_text(encoding="utf-8") == "the server's secret"
    assert linked.is_symlink()
    assert "replaced" not in (shop.templates / "winback/en/email.txt").read_text("utf-8")


def test_the_shipped_templates_are_read_only(shop: Shop) -> None:
    from campaign.config import load_config

    text = shop.config_path.read_text(encoding="utf-8").replace('dir = "templates"\n', "")
    shop.config_path.write_text(text, encoding="utf-8")
    (shop.templates).rename(shop.folder / "elsewhere")
    shop.config = load_config(shop.config_path)
    with client_for(shop, "operator") as client:
        listing = client.get("/templates").text
        source = client.get(f"/templates/file?name={FILE}")
        response = client.post("/templates/save", data={
            "csrf": token(client), "name": FILE, "source": "changed",
        })
    assert "read-only" in listing
    assert source.status_code == 200 and 'id="save"' not in source.text
    assert response.status_code == 400 and "read-only" in response.text


def test_the_editor_works_without_javascript(shop: Shop) -> None:
    with client_for(shop, "marketer") as client:
        page = client.get("/templates/file?name=winback/en/sms.txt&channel=sms").text
    assert 'id="source"' in page and "segment(s)" in page
    assert "No findings" in page or 'class="finding' in page


def _customer(shop: Shop, name: str) -> str:
    from sqlalchemy.orm import Session

    from tests.factories import make_user

    with Session(shop.engine) as session:
        user = make_user(session, external_id="C-1001", name=name, locale="en")
        session.commit()
        return user.external_id


def test_a_marketer_previews_with_a_real_customer(shop: Shop) -> None:
    customer = _customer(shop, "Priya Raman")
    source = (shop.templates / FILE).read_text(encoding="utf-8")
    with client_for(shop, "marketer") as client:
        answer = client.post("/templates/check", data={
            "csrf": token(client), "name": FILE, "source": source, "user": customer,
        }).json()
    assert answer["error"] is None
    assert answer["preview"]["text"].startswith("Hi Priya,")
    assert "CB-PREVIEW" in answer["preview"]["text"]


def test_a_real_customers_context_is_kept_only_for_its_ttl(shop: Shop) -> None:
    from datetime import timedelta

    from sqlalchemy import update

    from campaign.app.templates import UserContexts
    from campaign.db.models import User
    from tests.console_helpers import NOW

    customer = _customer(shop, "Priya Raman")
    contexts = UserContexts(ttl_seconds=60)

    def first_name(at: datetime) -> str:
        context, _ = contexts.get(shop.engine, shop.config, customer, "winback", "email",
                                  now=at, notes=[])
        return str(context["user"]["first_name"])

    assert first_name(NOW) == "Priya"
    with shop.engine.begin() as connection:
        connection.execute(update(User).where(User.external_id == customer).values(name="Ann Lee"))
    assert first_name(NOW + timedelta(seconds=30)) == "Priya"
    assert first_name(NOW + timedelta(seconds=61)) == "Ann"
