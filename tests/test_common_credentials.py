"""Credentials are typed dlt configspecs: Bitrix24's webhook or OAuth app, ONLYOFFICE's token or username and
password, from env or .dlt/secrets.toml; a missing one names every place dlt looked. Each probe runs in a fresh
interpreter inside a project folder of its own (dlt reads ./.dlt of the working directory)."""

from __future__ import annotations

import os
import subprocess
import sys

PROBE = """
from crm_invoices.sources.common import SourceError
from crm_invoices.sources.{crm} import {crm}_source
try:
    source = {crm}_source()
except SourceError as exc:
    print("ERROR", exc)
else:
    print("OK", source.name)
"""


def probe(crm: str, folder, secrets: str | None = None, env: dict | None = None) -> str:
    if secrets is not None:
        (folder / ".dlt").mkdir(exist_ok=True)
        (folder / ".dlt" / "secrets.toml").write_text(secrets)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    if crm == "onlyoffice":
        clean["SOURCES__ONLYOFFICE__BASE_URL"] = "https://crm.example.com"
    proc = subprocess.run([sys.executable, "-c", PROBE.format(crm=crm)], cwd=folder, env={**clean, **(env or {})},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_bitrix24_a_webhook_in_secrets_toml_just_works(tmp_path):
    out = probe("bitrix24", tmp_path, '[sources.bitrix24]\nwebhook_url = "https://b24.example/rest/1/s3cretValue99/"\n')
    assert out == "OK bitrix24"


def test_bitrix24_an_oauth_app_from_the_environment_just_works(tmp_path):
    out = probe("bitrix24", tmp_path, env={"SOURCES__BITRIX24__PORTAL_URL": "https://b24.example",
                               "SOURCES__BITRIX24__CLIENT_ID": "local.1", "SOURCES__BITRIX24__CLIENT_SECRET": "cs-1",
                               "SOURCES__BITRIX24__REFRESH_TOKEN": "rt-1"})
    assert out == "OK bitrix24"


def test_bitrix24_missing_credentials_name_every_place_dlt_looked(tmp_path):
    # an incomplete OAuth app: what is missing is named with its env variables and its secrets.toml keys
    out = probe("bitrix24", tmp_path, '[sources.bitrix24]\nclient_secret = "cs-1"\n',
                env={"SOURCES__BITRIX24__CLIENT_ID": "local.1", "SOURCES__BITRIX24__WEBHOOK_URL": ""})
    assert out.startswith("ERROR Bitrix24: no credentials configured (neither an inbound webhook nor a complete "
                          "OAuth app). Fix: set SOURCES__BITRIX24__WEBHOOK_URL=")
    assert "webhook_url is set to an empty value." in out
    assert "dlt looked for portal_url in Environment Variables: " in out and "SOURCES__BITRIX24__PORTAL_URL" in out
    assert "secrets.toml: " in out and "sources.bitrix24.refresh_token" in out
    assert "dlt looked for client_secret" not in out and "dlt looked for client_id" not in out  # those are set
    assert "cs-1" not in out


def test_onlyoffice_a_token_in_secrets_toml_just_works(tmp_path):
    assert probe("onlyoffice", tmp_path, '[sources.onlyoffice]\ntoken = "tok-123456"\n') == "OK onlyoffice"


def test_onlyoffice_username_and_password_from_the_environment_just_work(tmp_path):
    env = {"SOURCES__ONLYOFFICE__USERNAME": "admin@example.com", "SOURCES__ONLYOFFICE__PASSWORD": "pw-123456"}
    assert probe("onlyoffice", tmp_path, env=env) == "OK onlyoffice"


def test_onlyoffice_missing_credentials_name_every_place_dlt_looked(tmp_path):
    out = probe("onlyoffice", tmp_path, '[sources.onlyoffice]\npassword = "pw-123456"\n', env={"SOURCES__ONLYOFFICE__USERNAME": ""})
    assert out.startswith("ERROR ONLYOFFICE: no credentials are configured. Fix: set SOURCES__ONLYOFFICE__TOKEN")
    assert "dlt looked for token in Environment Variables: " in out and "SOURCES__ONLYOFFICE__TOKEN" in out
    assert "sources.onlyoffice.token" in out and "username is set to an empty value." in out
    assert "pw-123456" not in out
