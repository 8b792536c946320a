"""Two Bitrix24 portals of one group of companies, side by side: the main one configured as always (environment),
a second one ("spb") listed in SOURCES__BITRIX24__ACCOUNTS and configured in .dlt/secrets.toml. Each is its own
pipeline, dataset, state and failure; the marts hold both, each to the kopeck, keyed by account."""

from __future__ import annotations

from collections import Counter

import pytest
from crm_invoices.sandbox.bitrix24 import expected_invoices, expected_lines, expected_payments

from tests.bitrix24_support import (
    FAST_CLIENT,
    FAST_PORTAL,
    FCT_COLUMNS,
    LINE_COLUMNS,
    PAYMENT_COLUMNS,
    diff_rows,
)
from tests.conftest import assert_ok

ACCOUNTS = {"SOURCES__BITRIX24__ACCOUNTS": '["spb"]'}


@pytest.fixture
def portals(make_sandbox):
    main = make_sandbox(invoices={"bitrix24": 30}, seed=7, bitrix24=FAST_PORTAL)
    spb = make_sandbox(invoices={"bitrix24": 24}, seed=8, bitrix24=FAST_PORTAL)
    return main, spb


def write_spb_secrets(workdir, url: str) -> None:
    (workdir.path / ".dlt").mkdir(exist_ok=True)
    (workdir.path / ".dlt" / "secrets.toml").write_text(f'[sources.bitrix24.spb]\nwebhook_url = "{url}"\n')


def run(workdir, main, extra=None):
    return workdir.cli("run", "--sources", "bitrix24", "--no-progress", sandbox=main,
                       env={**FAST_CLIENT, **ACCOUNTS, **(extra or {})})


def truth(main, spb):
    return ({"invoices": expected_invoices(main.world) + expected_invoices(spb.world, account="spb"),
             "lines": expected_lines(main.world) + expected_lines(spb.world, account="spb"),
             "payments": expected_payments(main.world) + expected_payments(spb.world, account="spb")})


def assert_marts_hold_both(workdir, main, spb) -> None:
    want = truth(main, spb)
    got = workdir.query_dicts(f"select {', '.join(FCT_COLUMNS)} from marts.fct_invoices")
    assert diff_rows(got, want["invoices"], "invoice_key", FCT_COLUMNS) == []
    lines = workdir.query_dicts(f"select {', '.join(LINE_COLUMNS)} from marts.fct_invoice_lines")
    assert diff_rows(lines, want["lines"], ("invoice_key", "line_number"), LINE_COLUMNS) == []
    payments = workdir.query_dicts(f"select {', '.join(PAYMENT_COLUMNS)} from marts.fct_payments")
    assert diff_rows(payments, want["payments"], "payment_key", PAYMENT_COLUMNS) == []


def test_two_portals_load_side_by_side_each_in_its_own_pipeline_and_dataset(portals, workdir):
    main, spb = portals
    write_spb_secrets(workdir, spb["bitrix24"].webhook_url(spb.base_url))
    proc = run(workdir, main)
    assert_ok(proc)
    assert "loading Bitrix24 ..." in proc.stderr and "loading Bitrix24 (spb) ..." in proc.stderr
    assert_marts_hold_both(workdir, main, spb)
    by_account = dict(workdir.query("select account, count(*) from marts.fct_invoices group by 1"))
    want = Counter(e["account"] for e in truth(main, spb)["invoices"])
    assert by_account == want and set(want) == {"sandbox", "spb"}
    datasets = {r[0] for r in workdir.query("select schema_name from information_schema.schemata")}
    assert {"raw_bitrix24", "raw_bitrix24_spb", "raw_bitrix24_all"} <= datasets
    assert {p.name for p in (workdir.data / "pipelines").iterdir()} == {"crm_invoices_bitrix24",
                                                                      "crm_invoices_bitrix24_spb"}
    # each portal was asked only for its own data: nothing of one lands in the other's dataset
    assert workdir.query("select distinct account from raw_bitrix24_spb.smart_invoices") == [("spb",)]
    assert workdir.query("select distinct account from raw_bitrix24.smart_invoices") == [("sandbox",)]

    # an unchanged rerun doubles nothing
    assert_ok(run(workdir, main))
    assert_marts_hold_both(workdir, main, spb)

    # a deletion in one portal marks that portal's invoice only, not the other's invoice with the same id
    ids = {i.id for i in main.world.invoices["bitrix24"] if i.kind == "smart" and not i.deleted}
    gone = next(i for i in spb.world.invoices["bitrix24"] if i.kind == "smart" and not i.deleted and i.id in ids)
    spb["bitrix24"].delete_invoice(gone.id)
    assert_ok(run(workdir, main))
    assert_marts_hold_both(workdir, main, spb)
    assert workdir.query("select account, is_deleted from marts.fct_invoices where invoice_key in (?, ?) order by 1",
                         [f"bitrix24:sandbox:SI:{gone.id}", f"bitrix24:spb:SI:{gone.id}"]) == [
        ("sandbox", False), ("spb", True)]


def test_one_portal_failing_does_not_stop_the_other_and_loses_nothing(portals, workdir):
    main, spb = portals
    good = spb["bitrix24"].webhook_url(spb.base_url)
    write_spb_secrets(workdir, good)
    assert_ok(run(workdir, main))
    kept = workdir.query("select * from raw_bitrix24_spb.smart_invoices order by id")

    main["bitrix24"].add_invoice("smart")
    write_spb_secrets(workdir, good.replace(spb["bitrix24"].portal.webhook_secret, "revoked-secret"))
    proc = run(workdir, main)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "crm-invoices: Bitrix24 (spb): " in proc.stderr and " Fix: " in proc.stderr
    assert "revoked-secret" not in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    # the main portal's new invoice is in; the second portal's rows are exactly what its last good run left
    assert workdir.query("select * from raw_bitrix24_spb.smart_invoices order by id") == kept
    assert_marts_hold_both(workdir, main, spb)


def test_a_listed_account_without_its_own_portal_is_refused_not_loaded_as_a_copy_of_the_main_one(portals, workdir):
    main, _spb = portals
    proc = workdir.cli("run", "--sources", "bitrix24", "--no-progress", sandbox=main,
                       env={**FAST_CLIENT, "SOURCES__BITRIX24__ACCOUNTS": "kzn"})
    assert proc.returncode == 1
    assert ("crm-invoices: Bitrix24 (kzn): the account has no webhook_url / portal_url of its own. Fix: set "
            "SOURCES__BITRIX24__KZN__WEBHOOK_URL or SOURCES__BITRIX24__KZN__PORTAL_URL") in proc.stderr
    assert dict(workdir.query("select account, count(*) from marts.fct_invoices group by 1")) == {
        "sandbox": len(expected_invoices(main.world))}
    datasets = {r[0] for r in workdir.query("select schema_name from information_schema.schemata")}
    assert "raw_bitrix24_kzn" not in datasets


def test_a_bad_account_name_is_a_clear_error_before_any_crm_is_called(portals, workdir):
    main, _spb = portals
    proc = workdir.cli("run", "--sources", "bitrix24", "--no-progress", sandbox=main,
                       env={**FAST_CLIENT, "SOURCES__BITRIX24__ACCOUNTS": '["SPb-2"]'})
    assert proc.returncode == 3
    assert "crm-invoices: Bitrix24: account name(s) 'spb-2' in SOURCES__BITRIX24__ACCOUNTS cannot be used." in proc.stderr
    assert main.count("bitrix24") == 0


def test_an_oauth_portal_beside_a_webhook_one_never_borrows_the_main_portals_webhook(portals, workdir):
    """The main portal by webhook (environment), the second by OAuth only (secrets.toml). dlt would fall back to
    the main webhook for the second portal's missing webhook_url; it must use its own OAuth app, and keep its
    rotated refresh token in a store of its own."""
    main, spb = portals
    oauth = {k.removeprefix("SOURCES__BITRIX24__").lower(): v for k, v in spb["bitrix24"].oauth_env(spb.base_url).items()
             if not k.endswith("__ACCOUNT")}
    (workdir.path / ".dlt").mkdir(exist_ok=True)
    (workdir.path / ".dlt" / "secrets.toml").write_text(
        "[sources.bitrix24.spb]\n" + "".join(f'{k} = "{v}"\n' for k, v in oauth.items()))
    for _ in range(2):  # the second run refreshes with the rotated token from the account's own store
        assert_ok(run(workdir, main))
        assert_marts_hold_both(workdir, main, spb)
    assert (workdir.data / "secrets" / "bitrix24_oauth_spb.json").is_file()
    assert not (workdir.data / "secrets" / "bitrix24_oauth.json").exists()
