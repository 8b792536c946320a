"""The CRM sources this project knows: one entry per source, each run as its own dlt pipeline.

Separate pipelines give each source its own state, its own load packages and its own failure: a wrong
Bitrix24 secret does not stop SalesMan from loading.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceSpec:
    name: str  # also the dlt config section: SOURCES__<NAME>__...
    display: str  # the name users read in messages
    module: str  # the package holding the @dlt.source
    factory: str  # the @dlt.source function
    # raw tables the dbt staging models read; the models of a source are enabled only when all exist
    required_tables: tuple[str, ...]

    @property
    def pipeline_name(self) -> str:
        return f"crm_invoices_{self.name}"

    @property
    def dataset_name(self) -> str:
        return f"raw_{self.name}"

    def make_source(self, **kwargs):
        return getattr(importlib.import_module(self.module), self.factory)(**kwargs)


ALL_SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec("salesman", "SalesMan", "crm_invoices.sources.salesman", "salesman_source",
               ("invoice_rows", "invoice_details")),
    SourceSpec("bitrix24", "Bitrix24", "crm_invoices.sources.bitrix24", "bitrix24_source",
               ("smart_invoices", "stages", "currencies")),
    SourceSpec("onlyoffice", "ONLYOFFICE", "crm_invoices.sources.onlyoffice", "onlyoffice_source",
               ("invoices", "invoice_lines", "taxes", "portal")),
)

# A source is available once its package exists (sources are added issue by issue).
SOURCES: dict[str, SourceSpec] = {
    spec.name: spec for spec in ALL_SOURCES if importlib.util.find_spec(spec.module) is not None
}
