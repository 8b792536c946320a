"""The dbt project's borders: the CRM list comes in as vars (crm_sources, crm_sources_loaded), staging is one
model per source table ending in a casting `final` CTE, intermediate reads only staging and is documented and
tested, the unions match columns by name, the reconciliation rules are listed once (the seed), and source
freshness warns without ever failing. The static checks read the project's files; the last tests build it over
a warehouse where only some CRMs are loaded."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from crm_invoices.pipelines.models import crm_vars
from crm_invoices.pipelines.registry import ALL_SOURCES
from crm_invoices.pipelines.report import labels
from crm_invoices.pipelines.settings import MODELS_DIR

from tests.conftest import assert_ok

CRMS = [spec.name for spec in ALL_SOURCES]
MODELS = MODELS_DIR / "models"


def _sql(folder: Path) -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.sql"))}


def _yaml_models(folder: Path) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for path in sorted(folder.rglob("*.yml")):
        for model in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("models", []):
            out[model["name"]] = model
    return out


def _outside_crm_folders() -> list[Path]:
    crm_folders = {MODELS / layer / crm for layer in ("staging", "intermediate") for crm in CRMS}
    return [p for p in sorted(MODELS_DIR.rglob("*")) if p.is_file() and p.suffix in (".sql", ".yml")
            and p.name != "dbt_project.yml" and not any(folder in p.parents for folder in crm_folders)]


def test_the_registry_is_the_crm_list_dbt_gets():
    assert crm_vars({"salesman": True, "bitrix24": False, "onlyoffice": True}) == {
        "crm_sources": ["salesman", "bitrix24", "onlyoffice"], "crm_sources_loaded": ["salesman", "onlyoffice"]}
    project = yaml.safe_load((MODELS_DIR / "dbt_project.yml").read_text())
    assert project["vars"]["crm_sources"] == CRMS  # the hand-run default is the registry's list
    assert not [k for k in project["vars"] if k.endswith("_enabled")]


def test_no_sql_or_yaml_outside_a_crms_own_folders_names_a_crm_in_code():
    """CRM ids as code (a model name, a literal, a list) appear only in staging/<crm>/ and intermediate/<crm>/;
    prose in descriptions may still explain a CRM's behaviour."""
    pattern = re.compile(r"['\"\[,(\s_](" + "|".join(CRMS) + r")['\"\],)\s_]")
    hits = []
    for path in _outside_crm_folders():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if "description:" not in line and pattern.search(line) and not line.lstrip().startswith(("--", "{#")):
                hits.append(f"{path.relative_to(MODELS_DIR)}:{n}: {line.strip()}")
    assert hits == []


def test_each_crm_has_its_own_folders_and_enables_itself_from_the_loaded_list():
    for crm in CRMS:
        for layer in ("staging", "intermediate"):
            models = _sql(MODELS / layer / crm)
            assert models, (layer, crm)
            for name, sql in models.items():
                assert name.startswith(f"{'stg' if layer == 'staging' else 'int'}_{crm}__"), name
                assert f"{{{{ config(enabled=crm_loaded('{crm}')) }}}}" in sql, name


def test_staging_models_end_in_a_final_cte_and_intermediate_models_read_only_staging():
    for name, sql in _sql(MODELS / "staging").items():
        assert re.search(r"\bfinal as \(", sql) and sql.rstrip().endswith("select * from final"), name
    for name, sql in {**_sql(MODELS / "intermediate"), **_sql(MODELS / "marts")}.items():
        assert "source(" not in sql and "source_or_empty(" not in sql, name
        refs = re.findall(r"ref\('(\w+)'\)", sql)
        assert all(r.startswith(("stg_", "int_", "fct_", "rpt_", "reconciliation_rules")) for r in refs), (name, refs)


def test_every_intermediate_model_is_documented_and_its_keys_tested():
    documented = _yaml_models(MODELS / "intermediate")
    for name in _sql(MODELS / "intermediate"):
        model = documented.get(name)
        assert model and model.get("description"), name
        tested = {c["name"] for c in model.get("columns", []) if c.get("data_tests")}
        assert tested, name
        key = {"invoices": "invoice_key", "payments": "payment_key"}.get(name.rsplit("_", 1)[-1])
        if key:
            column = next(c for c in model["columns"] if c["name"] == key)
            assert "not_null" in column["data_tests"] and "unique" in column["data_tests"], name


def test_every_source_has_a_warn_only_freshness_on_its_loads():
    for crm in CRMS:
        (source,) = yaml.safe_load((MODELS / "staging" / crm / f"_{crm}__sources.yml").read_text())["sources"]
        loads = next(t for t in source["tables"] if t["name"] == "_dlt_loads")
        assert loads["config"]["loaded_at_field"] == "inserted_at"
        assert set(loads["config"]["freshness"]) == {"warn_after", "filter"}  # no error_after


def test_the_reconciliation_rules_are_listed_once_in_the_seed():
    with (MODELS_DIR / "seeds" / "reconciliation_rules.csv").open(encoding="utf-8", newline="") as f:
        seed = list(csv.DictReader(f))
    rules = [r["rule"] for r in seed]
    assert len(rules) == len(set(rules)) == 11
    assert {r["severity"] for r in seed} == {"error", "warning"}
    assert all(all(r.values()) for r in seed)
    sql = (MODELS / "marts" / "rpt_reconciliation_exceptions.sql").read_text(encoding="utf-8")
    emitted = re.findall(r"^\s+select '(\w+)'", sql, flags=re.MULTILINE)
    assert sorted(emitted) == sorted(rules)
    assert "'error'" not in sql and "'warning'" not in sql  # severities come from the seed
    # the report reads the same texts
    assert list(labels.RULES) == rules
    assert all(labels.rule_text(lang, r["rule"], "meaning") == r[f"description_{lang}"] and
               labels.rule_text(lang, r["rule"], "todo") == r[f"todo_{lang}"] for r in seed for lang in labels.LANGS)


# --- built over a warehouse where one CRM is not loaded ----------------------------------------------------


@pytest.fixture(scope="module")
def partly_loaded(tmp_path_factory):
    from crm_invoices.sandbox.server import Sandbox
    from crm_invoices.sandbox.world import World

    from tests.conftest import Workdir

    loaded, missing = CRMS[:-1], CRMS[-1]
    sandbox = Sandbox(World.generate(seed=5, invoices={c: (12 if c in loaded else 0) for c in CRMS})).start()
    workdir = Workdir(tmp_path_factory.mktemp("layers"))
    try:
        assert_ok(workdir.cli("run", "--no-progress", "--sources", ",".join(loaded), sandbox=sandbox))
        yield workdir, loaded, missing
    finally:
        sandbox.stop()


def test_only_the_loaded_crms_models_build_and_the_unions_select_columns_by_name(partly_loaded):
    workdir, loaded, missing = partly_loaded
    relations = {t for (t,) in workdir.query(
        "select table_name from information_schema.tables where table_schema in ('staging', 'intermediate')")}
    assert not [t for t in relations if f"_{missing}__" in t]
    assert {s for (s,) in workdir.query("select distinct source_system from marts.fct_invoices")} == set(loaded)
    (compiled,) = workdir.data.glob("dbt/*/target/compiled/crm_invoices/models/intermediate/unioned/int_invoices.sql")
    branches = compiled.read_text().split("union all")
    assert len(branches) == len(loaded)
    for branch, crm in zip(branches, loaded, strict=True):
        assert re.search(r"select invoice_key, source_system, account, .*, is_declared_paid\s+from ", branch), branch
        assert f"int_{crm}__invoices" in branch
    assert workdir.query("select count(*) from marts.reconciliation_rules") == [(11,)]


def test_source_freshness_runs_for_the_loaded_crms_and_only_warns(partly_loaded):
    workdir, loaded, missing = partly_loaded
    script = ("from crm_invoices.pipelines.models import build_models\n"
              "from crm_invoices.pipelines.runner import enabled_sources\n"
              "r = build_models(enabled_sources(), command='source freshness')\n"
              "print(r.output)\n"
              "raise SystemExit(0 if r.ok else 2)\n")
    proc = subprocess.run([sys.executable, "-c", script], cwd=workdir.path, env=workdir.env(),
                          capture_output=True, text=True, timeout=600)
    assert_ok(proc)
    (sources,) = workdir.data.glob("dbt/*/target/sources.json")
    results = json.loads(sources.read_text())["results"]
    assert sorted(r["unique_id"].split(".")[2] for r in results) == sorted(loaded)
    assert {r["status"] for r in results} <= {"pass", "warn"}
