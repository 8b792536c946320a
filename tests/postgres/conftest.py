"""The PostgreSQL suite: runs only against a server named by ``CRM_INVOICES_TEST_POSTGRES_DSN`` (a superuser's
``postgresql://user:password@127.0.0.1:port/postgres``; the server must ask for passwords, scram or md5).
``.ci/postgres.sh`` installs PostgreSQL from Debian's packages, starts a throwaway cluster on a loopback port,
runs this suite and removes the cluster. Without that variable the folder is not collected, so ``make test``
needs no PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest

ADMIN_DSN = os.environ.get("CRM_INVOICES_TEST_POSTGRES_DSN", "")

collect_ignore_glob = [] if ADMIN_DSN else ["test_*.py"]


def dsn_for(database: str, password: str | None = None, port: int | None = None) -> str:
    """The admin DSN pointed at another database (and, for the failure tests, another password or port)."""
    parts = urlsplit(ADMIN_DSN)
    user = parts.username or "postgres"
    pw = parts.password if password is None else password
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{pw}@{host}:{port or parts.port or 5432}"
    return urlunsplit((parts.scheme, netloc, f"/{database}", "", ""))


def admin_connect(database: str | None = None):
    import psycopg2

    con = psycopg2.connect(dsn_for(database) if database else ADMIN_DSN)
    con.autocommit = True
    return con


def pg_query(database: str, sql: str, params=None) -> list[tuple]:
    con = admin_connect(database)
    try:
        with con.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        con.close()


def create_database(name: str | None = None) -> str:
    name = name or f"crm_test_{uuid.uuid4().hex[:10]}"
    con = admin_connect()
    try:
        with con.cursor() as cur:
            cur.execute(f'create database "{name}"')
    finally:
        con.close()
    return name


def drop_database(name: str) -> None:
    con = admin_connect()
    try:
        with con.cursor() as cur:
            cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where datname = %s", (name,))
            cur.execute(f'drop database if exists "{name}"')
    finally:
        con.close()


@pytest.fixture
def database() -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = create_database()
    yield name
    drop_database(name)
