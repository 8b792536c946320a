"""Several accounts of one CRM: a group of companies with two Bitrix24 portals, a SalesMan per legal entity.

The main account is configured as always, under ``[sources.<crm>]``. More accounts are listed by name and
configured in dlt's own layout for a named source, one section per account::

    [sources.bitrix24]
    accounts = ["spb"]                      # or SOURCES__BITRIX24__ACCOUNTS='["spb"]'
    [sources.bitrix24.spb]
    webhook_url = "https://spb.bitrix24.ru/rest/1/..."   # or SOURCES__BITRIX24__SPB__WEBHOOK_URL

Each account is its own dlt pipeline (``crm_invoices_bitrix24_spb``) with its own dataset
(``raw_bitrix24_spb``), state and failure. dlt resolves an account's settings in ``sources.<crm>.<account>``
first and then falls back to ``sources.<crm>``: shared settings (page sizes, time-outs) are written once. The
account's identity (its URL) must be its own, else the fallback would load the main account a second time
under another name; that is refused. Rows carry the account's name in ``account`` (the marts' keys include it).

Before dbt runs, a CRM loaded by more than one account gets a schema ``raw_<crm>_all`` of views that union
its datasets table by table, columns matched by name (a column one account lacks is NULL there); the dbt
sources read that schema through the ``raw_schemas`` var.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .registry import SourceSpec

ACCOUNT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
RESERVED = {"accounts", "all", "staging"}  # the list's own key, the union schema's and dlt's staging suffix
UNION_SUFFIX = "_all"
STAGING_SUFFIX = "_staging"  # dlt's merge staging dataset beside every dataset


class AccountError(Exception):
    """An account that cannot be run as configured; the message names the CRM, the cause and the fix."""


@dataclass(frozen=True)
class Account:
    spec: SourceSpec
    name: str | None = None  # None: the main account, configured directly under [sources.<crm>]

    @property
    def source(self) -> str:
        return self.spec.name

    @property
    def key(self) -> str:
        """What ``--sources`` selects and the summary prints: ``bitrix24`` or ``bitrix24.spb``."""
        return self.spec.name if self.name is None else f"{self.spec.name}.{self.name}"

    @property
    def display(self) -> str:
        return self.spec.display if self.name is None else f"{self.spec.display} ({self.name})"

    @property
    def pipeline_name(self) -> str:
        return self.spec.pipeline_name if self.name is None else f"{self.spec.pipeline_name}_{self.name}"

    @property
    def dataset_name(self) -> str:
        return self.spec.dataset_name if self.name is None else f"{self.spec.dataset_name}_{self.name}"

    @property
    def env_prefix(self) -> str:
        return self.spec.env_prefix if self.name is None else f"{self.spec.env_prefix}{self.name.upper()}__"

    @property
    def section(self) -> str:
        return f"sources.{self.spec.name}" if self.name is None else f"sources.{self.spec.name}.{self.name}"

    @contextmanager
    def isolated(self) -> Iterator[None]:
        """While this account's source is made and extracted: its own keys (``SourceSpec.own_keys``) that it
        does not set are set to "" under its section, which ends dlt's fallback to the main account's (an empty
        setting is a missing one to the sources). Shared settings still fall back."""
        if self.name is None:
            yield
            return
        from .settings import temporary_env

        own = own_settings(self.section)
        with temporary_env({f"{self.env_prefix}{key.upper()}": "" for key in self.spec.own_keys if key not in own}):
            yield

    def make_source(self):
        if self.name is None:
            return self.spec.make_source()
        if not any(own_settings(self.section).get(key) not in (None, "") for key in self.spec.identity):
            keys = " or ".join(f"{self.env_prefix}{key.upper()}" for key in self.spec.identity)
            raise AccountError(
                f"{self.display}: the account has no {' / '.join(self.spec.identity)} of its own. Fix: set {keys} "
                f"(or {self.spec.identity[0]} under [{self.section}] in .dlt/secrets.toml); without it dlt would "
                f"fall back to the main account's and load that account a second time as {self.name!r}.")
        return self.spec.factory_function().clone(name=self.name)(**self.own_arguments())

    def own_arguments(self) -> dict:
        """The account's own settings, as explicit arguments of the source function, typed from its signature.

        Passed explicitly because dlt's fallback looks provider by provider: a main-account setting in the
        environment (``SOURCES__BITRIX24__WEBHOOK_URL``) would win over the account's own in secrets.toml.
        What the account does not set is still resolved by dlt, shared settings included."""
        import inspect
        import typing

        from dlt.common.configuration.utils import deserialize_value

        function = self.spec.factory_function()
        params = inspect.signature(function).parameters
        try:
            hints = typing.get_type_hints(getattr(function, "__wrapped__", function))
        except Exception:  # unresolvable annotations: pass the values as given
            hints = {}
        own = own_settings(self.section)
        args = {}
        for key, value in own.items():
            if key not in params:
                continue
            hint = _without_none(hints.get(key))
            args[key] = deserialize_value(key, value, hint) if hint is not None and isinstance(value, str) else value
        # the account's name is its own too: a shared `account` setting would give two accounts one key
        args.setdefault("account", self.name)
        from .settings import data_dir

        for key, template in self.spec.account_defaults:
            if key in params:
                args.setdefault(key, template.format(data_dir=data_dir(), account=self.name))
        return args


def _without_none(hint):
    """``Optional[int]`` -> ``int``: what dlt's coercion takes."""
    import types
    import typing

    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return inner[0] if len(inner) == 1 else None
    return hint


def provided(section: str, key: str) -> object:
    """The value at exactly ``section.key`` in dlt's config providers (environment, then secrets.toml, then
    config.toml: dlt's order), or None. Asked of the providers themselves, not through ``dlt.config``: the
    accessor records every value it resolves for the pipeline's trace, and a whole section read that way put
    an API key into trace.pickle."""
    for value in _provided_all(section, key):
        return value
    return None


def _provided_all(section: str, key: str) -> Iterator[object]:
    import dlt
    from dlt.common.typing import AnyType

    sections = tuple(section.split("."))
    for provider in dlt.config.config_providers:
        value, _ = provider.get_value(key, AnyType, None, *sections)
        if value is not None:
            yield value


def own_settings(section: str) -> dict:
    """Every value set exactly under ``section`` (``sources.bitrix24.spb``): the environment over secrets.toml
    over config.toml (dlt's own order), without dlt's fallback to the enclosing sections."""
    *parent, name = section.split(".")
    out: dict = {}
    for table in reversed(list(_provided_all(".".join(parent), name))):  # the toml tables, [sources.x.spb]
        if isinstance(table, dict):
            out.update({k: v for k, v in table.items() if not isinstance(v, dict)})
    prefix = section.upper().replace(".", "__") + "__"
    for key, value in os.environ.items():
        if key.startswith(prefix) and "__" not in key[len(prefix):] and value != "":
            out[key[len(prefix):].lower()] = value
    return out


def account_names(spec: SourceSpec) -> list[str]:
    raw = provided(f"sources.{spec.name}", "accounts")
    if raw in (None, "", []):
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = [part for part in re.split(r"[,\s]+", raw) if part]
    names = [str(n).strip().lower() for n in (raw if isinstance(raw, list | tuple) else [raw])]
    bad = [n for n in names if not ACCOUNT_NAME.match(n) or n in RESERVED or n.endswith((UNION_SUFFIX, STAGING_SUFFIX))]
    if bad:
        raise AccountError(
            f"{spec.display}: account name(s) {', '.join(map(repr, bad))} in {spec.env_prefix}ACCOUNTS cannot be "
            "used. Fix: lower-case letters, digits and _ (starting with a letter, at most 40), not 'all', 'staging' or "
            "'accounts'; the name becomes the pipeline, the dataset raw_<crm>_<name> and the rows' account.")
    if len(set(names)) != len(names):
        raise AccountError(f"{spec.display}: {spec.env_prefix}ACCOUNTS lists an account twice. Fix: name each once.")
    return names


def accounts_of(spec: SourceSpec) -> list[Account]:
    """The main account (when it is configured, or when no other is listed) and every listed one."""
    named = [Account(spec, name) for name in account_names(spec)]
    main = own_settings(f"sources.{spec.name}")
    main_set = any(main.get(key) not in (None, "") for key in spec.identity)
    return ([Account(spec)] if main_set or not named else []) + named


# ---- the dbt side: one schema per CRM for the models to read -------------------------------------------------
def raw_schemas(tables: dict[str, dict[str, list[tuple[str, str]]]]) -> dict[str, list[str]]:
    """CRM -> its raw datasets in the warehouse, from ``{dataset: {table: [(column, type)]}}``."""
    from .registry import NAMES

    out: dict[str, list[str]] = {}
    for dataset in sorted(tables):
        if dataset.endswith((UNION_SUFFIX, STAGING_SUFFIX)):
            continue
        # dlt's naming folds "__" to "_": raw_bitrix24_spb. No CRM's name is the start of another's.
        crm = next((n for n in NAMES if dataset == f"raw_{n}" or dataset.startswith(f"raw_{n}_")), None)
        if crm is not None:
            out.setdefault(crm, []).append(dataset)
    return out


def union_views_sql(crm: str, datasets: list[str], tables: dict[str, dict[str, list[tuple[str, str]]]],
                    accounts: dict[str, str | None] | None = None) -> tuple[str, list[str]]:
    """(schema, statements) that (re)create ``raw_<crm>_all`` as one view per raw table over ``datasets``.

    ``accounts``: each dataset's account name (the one value its rows carry). A table, or rows, of a dataset
    loaded before the table had an ``account`` column (older deletion marks) get it filled in, so a mark in
    one account never matches another account's invoice with the same id."""
    accounts = accounts or {}
    schema = f"raw_{crm}{UNION_SUFFIX}"
    statements = [f'drop schema if exists "{schema}" cascade', f'create schema "{schema}"']
    # dlt's own tables stay per dataset, except its log of loads: the sources' freshness reads it
    names = sorted({t for d in datasets for t in tables[d] if not t.startswith("_dlt") or t == "_dlt_loads"})
    for table in names:
        columns: dict[str, str] = {}
        for d in datasets:
            for column, sql_type in tables[d].get(table, []):
                columns.setdefault(column, sql_type)
        selects = []
        for d in datasets:
            have = {c for c, _ in tables[d].get(table, [])}
            if not have:
                continue
            cols = ", ".join(_union_column(c, t, c in have, accounts.get(d)) for c, t in columns.items())
            selects.append(f'select {cols} from "{d}"."{table}"')
        statements.append(f'create view "{schema}"."{table}" as ' + " union all ".join(selects))
    return schema, statements


def _union_column(column: str, sql_type: str, present: bool, account: str | None) -> str:
    if column == "account" and account is not None:
        literal = "'" + account.replace("'", "''") + "'"
        return f'coalesce("account", {literal}) as "account"' if present else f'{literal} as "account"'
    return f'"{column}"' if present else f'cast(null as {sql_type}) as "{column}"'


def dataset_account_sql(dataset: str, tables: dict[str, list[tuple[str, str]]]) -> str | None:
    """A query for the account a dataset's rows carry (one per dataset), from its tables with the column."""
    with_account = [t for t, cols in sorted(tables.items())
                    if not t.startswith("_dlt") and any(c == "account" for c, _ in cols)]
    if not with_account:
        return None
    parts = " union all ".join(f'select min("account") as a from "{dataset}"."{t}"' for t in with_account)
    return f"select min(a) from ({parts}) as accounts"
