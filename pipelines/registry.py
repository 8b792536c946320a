"""The CRMs this project knows: the one list. Everything that needs "every CRM" reads it: the CLI and the
runner, the sandbox server and ``python -m crm_invoices.sandbox``, the world and its ground truth, the dbt
vars (``pipelines/models.py``), the tests' fixtures and the bench. Adding a CRM = its own folders plus one entry
here (the checklist: ``docs/ADDING_A_CRM.md``).

Each CRM runs as its own dlt pipeline: its own state, its own load packages and its own failure (a wrong
Bitrix24 secret does not stop SalesMan from loading). Modules are named as strings and imported on use, so
reading the list costs nothing and imports no CRM code.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceSpec:
    name: str  # the CRM's key everywhere: dlt config section (SOURCES__<NAME>__...), source_system, folders
    display: str  # the name users read in messages
    factory: str  # the @dlt.source function in the CRM's package, crm_invoices.sources.<name>
    # raw tables the dbt staging models read; the models of a source are enabled only when all exist
    required_tables: tuple[str, ...]
    provider: str  # the emulator class in crm_invoices.sandbox.<name>, which also holds its ground truth
    # settings that say which account of the CRM this is (its URL): a second account must set its own
    identity: tuple[str, ...] = ("base_url",)
    # settings a further account never inherits from the main one (its URL, credentials and name): dlt's
    # fallback to [sources.<crm>] is blocked for them (pipelines/accounts.py)
    own_keys: tuple[str, ...] = ("base_url", "account")
    # defaults a further account gets instead of the main one's, formatted with {data_dir} and {account}:
    # files one account keeps between runs (Bitrix24's rotated OAuth refresh token) must not be shared
    account_defaults: tuple[tuple[str, str], ...] = ()
    # sandbox world: invoice number prefix, distinct per CRM so that equal numbers are always planted on purpose
    number_prefix: str = ""

    @property
    def module(self) -> str:
        return f"crm_invoices.sources.{self.name}"

    @property
    def sandbox_module(self) -> str:
        """The emulator package: the provider class and ``expected_invoices/lines/payments(world)``; its
        ``rates`` module gives the rates the CRM serves (``fx_rates``, optional ``rates_to_base``)."""
        return f"crm_invoices.sandbox.{self.name}"

    @property
    def bench_module(self) -> str:
        return f"bench.{self.name}"

    @property
    def pipeline_name(self) -> str:
        return f"crm_invoices_{self.name}"

    @property
    def dataset_name(self) -> str:
        return f"raw_{self.name}"

    @property
    def env_prefix(self) -> str:
        return f"SOURCES__{self.name.upper()}__"

    def factory_function(self):
        return getattr(importlib.import_module(self.module), self.factory)

    def make_source(self, **kwargs):
        return self.factory_function()(**kwargs)

    def make_provider(self, world, **options):
        return getattr(importlib.import_module(self.sandbox_module), self.provider)(world, **options)

    def truth(self):
        return importlib.import_module(self.sandbox_module)

    def rates(self):
        return importlib.import_module(f"{self.sandbox_module}.rates")


ALL_SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("salesman", "SalesMan", "salesman_source", ("invoice_rows", "invoice_details"),
               provider="SalesmanProvider", own_keys=("base_url", "login", "api_key", "account")),
    SourceSpec("bitrix24", "Bitrix24", "bitrix24_source", ("smart_invoices", "stages", "currencies"),
               provider="Bitrix24Provider", identity=("webhook_url", "portal_url"),
               own_keys=("webhook_url", "portal_url", "client_id", "client_secret", "refresh_token", "token_store",
                         "account"),
               account_defaults=(("token_store", "{data_dir}/secrets/bitrix24_oauth_{account}.json"),),
               number_prefix="B-"),
    SourceSpec("onlyoffice", "ONLYOFFICE", "onlyoffice_source", ("invoices", "invoice_lines", "taxes", "portal"),
               provider="OnlyofficeProvider", own_keys=("base_url", "token", "username", "password", "account"),
               number_prefix="INV-"),
)

NAMES: tuple[str, ...] = tuple(spec.name for spec in ALL_SOURCES)

# A source is available once its package exists (a CRM's folders may be added before its entry is used).
SOURCES: dict[str, SourceSpec] = {
    spec.name: spec for spec in ALL_SOURCES if importlib.util.find_spec(spec.module) is not None
}


def spec(name: str) -> SourceSpec:
    return next(s for s in ALL_SOURCES if s.name == name)
