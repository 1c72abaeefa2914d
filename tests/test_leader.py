"""Exactly one scheduler among several daemons on PostgreSQL and MariaDB, and takeover
on death."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from campaign.daemon.leader import Leadership, make_leadership
from campaign.db.engine import make_engine
from tests.daemon_helpers import free_port, healthz, output, start, stop, wait_for, write_config


@pytest.fixture(
    params=[
        pytest.param("pg_url", marks=pytest.mark.postgres, id="postgresql"),
        pytest.param("mysql_url", marks=pytest.mark.mysql, id="mysql"),
    ]
)
def server_url(request: pytest.FixtureRequest) -> str:
    """A database server several daemons can share."""
    return str(request.getfixturevalue(request.param))


def test_only_one_session_holds_the_lock_until_it_lets_go(server_url: str) -> None:
    engine = make_engine(server_url)
    first: Leadership = make_leadership(engine)
    second: Leadership = make_leadership(engine)
    try:
        assert first.poll() is True
        assert second.poll() is False
        assert first.poll() is True  # still ours on the next beat
        first.release()
        assert second.poll() is True
    finally:
        first.release()
        second.release()
        engine.dispose()


def _leader(port: int) -> bool:
    body = healthz(port)
    return bool(body and body["scheduler"]["leader"])


def test_two_daemons_elect_one_leader_and_the_other_takes_over_when_it_is_killed(
    server_url: str, tmp_path: Path
) -> None:
    ports = [free_port(), free_port()]
    roots = [tmp_path / "a", tmp_path / "b"]
    daemons = []
    for root, port in zip(roots, ports, strict=True):
        root.mkdir()
        write_config(root, server_url, campaigns=("c",), health_port=port)
        daemons.append(start(["daemon"], root))
    try:
        wait_for(lambda: all(healthz(p) for p in ports), 60)
        leader = wait_for(lambda: [i for i, p in enumerate(ports) if _leader(p)], 30)
        assert len(leader) == 1, "exactly one scheduler"
        # Both stay healthy; only one holds the scheduler on later beats too.
        assert sum(_leader(p) for p in ports) == 1
        old = leader[0]
        other = 1 - old
        daemons[old].send_signal(signal.SIGKILL)
        daemons[old].wait(10)
        # The dead session frees the lock; the follower polls every 0.5 s.
        wait_for(lambda: _leader(ports[other]), 20)
        assert "daemon.leader.acquired" in output(daemons[other])
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                stop(daemon)


@pytest.mark.mysql
def test_mysql_lock_names_carry_the_database_so_two_databases_elect_apart(
    mysql_url: str,
) -> None:
    # Named locks are server-wide; the advisory locks of PostgreSQL are per database.
    from campaign.daemon.leader import MysqlLeadership, mysql_lock_name

    engine = make_engine(mysql_url)
    other = make_engine(mysql_url.replace(str(engine.url.database), "test", 1))
    ours, theirs = MysqlLeadership(engine), MysqlLeadership(other)
    try:
        assert mysql_lock_name(engine) != mysql_lock_name(other)
        assert ours.poll() is True and theirs.poll() is True
    finally:
        ours.release()
        theirs.release()
        engine.dispose()
        other.dispose()
