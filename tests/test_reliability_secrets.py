"""Secrets never leak, whether they come from the environment or from `.dlt/secrets.toml`: not in what a run
prints, nor in any file it writes (the DuckDB file and every text column in it, dlt's working dir with state,
schemas, traces and load packages, dbt's target and logs), and the OAuth token store keeps only its tokens."""

from __future__ import annotations

import duckdb

from tests.bitrix24_support import FAST_CLIENT
from tests.reliability_support import world_sandbox

SECRET_KEYS = ("API_KEY", "PASSWORD", "WEBHOOK_URL", "CLIENT_SECRET", "REFRESH_TOKEN")


def _toml(env: dict[str, str]) -> str:
    sections: dict[str, list[str]] = {}
    for key, value in env.items():
        _, source, name = key.split("__", 2)
        sections.setdefault(source.lower(), []).append(f'{name.lower()} = "{value}"')
    return "".join(f"[sources.{s}]\n" + "\n".join(lines) + "\n\n" for s, lines in sections.items())


def _text_columns_holding(db, secret: str) -> list[str]:
    found = []
    with duckdb.connect(str(db), read_only=True) as con:
        columns = con.execute("select table_schema, table_name, column_name from information_schema.columns "
                              "where data_type in ('VARCHAR', 'JSON') or data_type like 'VARCHAR%'").fetchall()
        for schema, table, column in columns:
            hits = con.execute(f'select count(*) from "{schema}"."{table}" where contains("{column}", ?)',
                               [secret]).fetchone()[0]
            if hits:
                found.append(f"{schema}.{table}.{column}")
    return found


def _leaks(workdir, outputs: str, secret: str, allowed=()) -> list[str]:
    places = [str(p) for p in workdir.path.rglob("*") if p.is_file() and p not in allowed
              and p.name != "secrets.toml" and secret.encode() in p.read_bytes()]
    if secret in outputs:
        places.append("terminal output")
    return places + _text_columns_holding(workdir.db, secret)


def test_secrets_from_secrets_toml_and_env_leak_nowhere_a_run_writes(make_sandbox, workdir):
    sandbox = world_sandbox(make_sandbox, n=20)
    bitrix = sandbox["bitrix24"]
    every = {**sandbox.demo_env(), **bitrix.oauth_env(sandbox.base_url)}
    every.pop("SOURCES__BITRIX24__WEBHOOK_URL")  # OAuth this time: client secret and a rotating refresh token
    in_toml = {k: v for k, v in every.items() if k.endswith(SECRET_KEYS)}
    plain = {k: v for k, v in every.items() if k not in in_toml}
    (workdir.path / ".dlt").mkdir()
    (workdir.path / ".dlt" / "secrets.toml").write_text(_toml(in_toml))

    outputs = ""
    # a full run, then a run whose token expires mid-run, then a run where every CRM fails: the error paths
    # print URLs and bodies, which is where a secret would slip out
    for faults in (False, "expire", True):
        for name in ("salesman", "onlyoffice"):
            sandbox[name].faults.fail_next = 50 if faults is True else 0
        bitrix.faults.fail_next = 50 if faults is True else 0
        if faults == "expire":
            bitrix.expire_access_tokens()
        proc = workdir.cli("run", "--no-progress", env={**plain, **FAST_CLIENT})
        outputs += proc.stdout + proc.stderr
        assert proc.returncode == (1 if faults is True else 0), proc.stderr[-3000:]
    assert "crm-invoices: SalesMan: " in outputs and "crm-invoices: Bitrix24: " in outputs
    assert bitrix.refreshes >= 2  # the rotated token was used: the store holds a new one

    store = workdir.data / "secrets" / "bitrix24_oauth.json"
    configured = [v for k, v in in_toml.items()]
    rotated = [t for t in bitrix.refresh_tokens if t != bitrix.portal.refresh_token] + list(bitrix.access_tokens)
    for secret in configured:
        assert (secret, _leaks(workdir, outputs, secret)) == (secret, [])
    for secret in rotated:  # tokens the portal issued during the runs: only their store may hold them
        assert (secret, _leaks(workdir, outputs, secret, allowed=(store,))) == (secret, [])
    assert store.exists()
