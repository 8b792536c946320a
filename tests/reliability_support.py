"""Shared helpers of the reliability tests (no tests here): a sandbox of all three CRMs, upstream changes a
user makes between runs, and the marts of a warehouse compared with a clean load of the same upstream."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import requests
from crm_invoices.pipelines.registry import NAMES

from tests.bitrix24_support import FAST_CLIENT, FAST_PORTAL
from tests.conftest import Workdir, assert_ok

ALL = NAMES
# Facts compared column by column; invoices deleted upstream are absent from a clean load and marked deleted
# in an incremental one, so the comparison is over live invoices (and the deleted ones are checked apart).
FACTS = {
    "fct_invoices": "select * from marts.fct_invoices where not is_deleted",
    "fct_payments": "select p.* from marts.fct_payments p join marts.fct_invoices i using (invoice_key) "
                    "where not i.is_deleted",
    "fct_invoice_lines": "select l.* from marts.fct_invoice_lines l join marts.fct_invoices i using (invoice_key) "
                         "where not i.is_deleted",
}


def world_sandbox(make_sandbox, n: int = 30, seed: int = 11):
    """All three CRMs, small pages so every list spans several of them, Bitrix24 without its 2 req/s pace."""
    return make_sandbox(invoices={s: n for s in ALL}, seed=seed, salesman={"page_size": 7},
                        bitrix24=dict(FAST_PORTAL))


def cli(workdir: Workdir, sandbox, *args: str, env: dict | None = None, check: bool = True):
    proc = workdir.cli(*args, "--no-progress", sandbox=sandbox, env={**FAST_CLIENT, **(env or {})}) \
        if args[0] == "run" else workdir.cli(*args, sandbox=sandbox, env=env)
    if check:
        assert_ok(proc)
    return proc


def facts(workdir: Workdir, db: Path | None = None) -> dict[str, list[tuple]]:
    """The three facts, every column, sorted: what two warehouses must agree on."""
    import duckdb

    with duckdb.connect(str(db or workdir.db), read_only=True) as con:
        return {name: sorted(con.execute(sql).fetchall(), key=repr) for name, sql in FACTS.items()}


def deleted_keys(workdir: Workdir, db: Path | None = None) -> set[str]:
    import duckdb

    with duckdb.connect(str(db or workdir.db), read_only=True) as con:
        return {k for (k,) in con.execute("select invoice_key from marts.fct_invoices where is_deleted").fetchall()}


def clean_load(tmp_path: Path, sandbox, name: str = "clean") -> dict[str, list[tuple]]:
    """The reference: a fresh folder loads the sandbox as it is now."""
    clean = Workdir(tmp_path / name)
    clean.path.mkdir(parents=True)
    cli(clean, sandbox, "run")
    return facts(clean)


def assert_same_facts(got: dict, expected: dict) -> None:
    for name in FACTS:
        assert len(got[name]) == len(expected[name]), name
        missing = [r for r in expected[name] if r not in set(got[name])][:3]
        extra = [r for r in got[name] if r not in set(expected[name])][:3]
        assert (name, missing, extra) == (name, [], [])


def upstream_changes(sandbox, round_no: int = 1) -> dict[str, list[str]]:
    """What users do in the three CRMs between two runs: new invoices, payments (partial, full, undone),
    status changes and deletions. Returns the invoice keys that were deleted, per CRM."""
    world = sandbox.world
    deleted: dict[str, list[str]] = {}

    # SalesMan: through its API (new, partial payment), and its UI (delete, undo a payment)
    sm = sandbox["salesman"]
    headers = {"Content-Type": "application/json", "apikey": sm.account.api_key,
               "login": next(iter(sm.account.logins))}

    def sm_api(method: str, body: dict) -> dict:
        return requests.post(f"{sandbox.base_url}/developer/v3/{method}", data=json.dumps(body),
                             headers=headers, timeout=30).json()

    added = sm_api("invoice/add", {"did": 2, "invoice": f"R{round_no}-1", "summa": 77777.77,
                                   "date": "2026-10-02", "rs": 3})
    sm_api("invoice/do", {"id": added["data"]["id"], "summa": 7000})
    victim = next(i for i in world.invoices["salesman"] if not i.deleted and not i.payments)
    sm.delete_invoice(victim.id)
    deleted["salesman"] = [f"salesman:sandbox:{victim.deal_id}:{victim.number}"]
    paid = next((r for r in sm.rows.values() if r.do == "on"), None)
    if paid is not None:
        sm.undo_payment(paid.crid)

    # Bitrix24: a partial and a full payment in the UI, a deletion
    bx = sandbox["bitrix24"]
    live = [i for i in world.invoices["bitrix24"] if not i.deleted and i.kind in ("smart", "legacy")]
    open_ = [i for i in live if i.status == "issued" and not i.payments]
    bx.pay(open_[0].id, Decimal("10.01"))
    bx.pay(open_[1].id, open_[1].totals()[2])
    gone = next(i for i in live if i not in open_[:2])
    bx.delete_invoice(gone.id)
    deleted["bitrix24"] = [f"bitrix24:sandbox:{'SI' if gone.kind == 'smart' else 'I'}:{gone.id}"]

    # ONLYOFFICE: a new invoice and a status change through its API, a deletion
    oo = sandbox["onlyoffice"]
    api = f"{sandbox.base_url}/api/2.0/crm/"
    oo_headers = {"Authorization": oo.portal.token}
    new = requests.post(api + "invoice.json", headers=oo_headers, timeout=30, json={
        "number": f"INV-R{round_no}", "issueDate": "2026-11-03T00:00:00", "dueDate": "2026-11-30T00:00:00",
        "contactId": 5, "currency": "rub", "exchangeRate": 1, "terms": "Net 30", "invoiceLines": [
            {"invoiceItemID": 1, "invoiceTax1ID": 0, "quantity": 2, "price": 1500.5}]}).json()["response"]
    requests.put(f"{api}invoice/status/2", headers=oo_headers, json={"invoiceids": [new["id"]]},
                 timeout=30).raise_for_status()
    oo_gone = next(i for i in world.invoices["onlyoffice"] if not i.deleted and i.number != f"INV-R{round_no}")
    oo.delete_invoice(oo_gone.id)
    deleted["onlyoffice"] = [oo_key(oo_gone)]
    return deleted


def oo_key(invoice) -> str:
    return f"onlyoffice:sandbox:{invoice.id + 4000}"
