"""Bitrix24 reruns: deletions reach the marts on the very next run, and a rerun costs what changed plus the id
sweep (at most half the requests of the first load), counted by the sandbox."""

from __future__ import annotations

from tests.bitrix24_support import assert_marts_match_truth, run, sandbox_for
from tests.conftest import assert_ok


def test_new_paid_and_deleted_invoices_are_right_after_the_next_run_at_half_the_first_loads_requests(
        make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 600)
    provider, world = sandbox["bitrix24"], sandbox.world
    assert_ok(run(workdir, sandbox, "--skip-models"))
    first_load = sandbox.count("bitrix24")

    new = [provider.add_invoice("smart") for _ in range(3)] + [provider.add_invoice("legacy") for _ in range(2)]
    live = [i for i in world.invoices["bitrix24"] if not i.deleted and i not in new]
    paid = [i for i in live if i.kind == "smart" and i.status == "issued" and not i.payments][:2]
    paid += [i for i in live if i.kind == "legacy" and i.status == "issued" and not i.payments][:1]
    for inv in paid:
        provider.pay(inv.id, inv.totals()[2])
    deleted = [next(i for i in live if i.kind == kind and i not in paid) for kind in ("smart", "legacy")]
    for inv in deleted:
        provider.delete_invoice(inv.id)
    sandbox.reset_counts()
    assert_ok(run(workdir, sandbox))
    rerun = sandbox.count("bitrix24")

    expected = {e["invoice_key"]: e for e in assert_marts_match_truth(workdir, world)}
    key = {"smart": "SI", "legacy": "I"}
    assert workdir.query("select invoice_key from marts.fct_invoices where is_deleted order by 1") == sorted(
        (f"bitrix24:sandbox:{key[i.kind]}:{i.id}",) for i in deleted)
    assert {expected[f"bitrix24:sandbox:{key[i.kind]}:{i.id}"]["status"] for i in paid} == {"paid"}
    assert all(f"bitrix24:sandbox:{key[i.kind]}:{i.id}" in expected for i in new)
    # a deleted invoice keeps its last lines and payments in the marts, next to is_deleted
    lines = workdir.query("select count(*) from marts.fct_invoice_lines where invoice_key = ?",
                          [f"bitrix24:sandbox:SI:{deleted[0].id}"])
    assert lines == [(len(deleted[0].lines),)]
    assert rerun * 2 <= first_load, (rerun, first_load)


def test_a_deletion_between_two_runs_without_other_changes_costs_no_more_than_a_quiet_rerun(make_sandbox, workdir):
    sandbox = sandbox_for(make_sandbox, 200, seed=4)
    provider = sandbox["bitrix24"]
    assert_ok(run(workdir, sandbox, "--skip-models"))
    sandbox.reset_counts()
    assert_ok(run(workdir, sandbox, "--skip-models"))
    quiet = sandbox.count("bitrix24")
    victim = next(i for i in sandbox.world.invoices["bitrix24"] if i.kind == "smart" and not i.payments)
    provider.delete_invoice(victim.id)
    sandbox.reset_counts()
    assert_ok(run(workdir, sandbox, "--skip-models"))
    assert sandbox.count("bitrix24") <= quiet
    assert workdir.query("select kind, id, is_deleted from raw_bitrix24.invoice_deletions") == [
        ("smart", victim.id, True)]
    # and back from the recycle bin: live again on the next run
    victim.deleted = False
    assert_ok(run(workdir, sandbox, "--skip-models"))
    assert workdir.query("select kind, id, is_deleted from raw_bitrix24.invoice_deletions") == [
        ("smart", victim.id, False)]
