"""The SalesMan state's packed per-row memory (memo.py): what is packed comes back exactly, and a state written
before the packing is still read (correctness only; no timing)."""

from crm_invoices.sources.salesman import memo
from crm_invoices.sources.salesman.helpers import fingerprint


def test_packed_rows_come_back_exactly():
    rows = [(c, None if c % 7 == 0 else c // 3 + 2**40, fingerprint({"crid": c, "summa": c * 10})) for c in
            range(1, 2000, 3)]
    state: dict = {"fingerprints": {"1": "00"}, "deals": {"1": 1}}
    memo.remember(state, rows)
    assert "fingerprints" not in state and "deals" not in state  # the old format is replaced, not kept beside
    fps, deals = memo.remembered(state)
    assert fps == {c: fp for c, _d, fp in rows}
    assert deals == {c: d for c, d, _fp in rows}
    assert list(fps) == [c for c, _d, _fp in rows]


def test_an_empty_memory_and_the_old_format_are_read():
    state: dict = {}
    memo.remember(state, [])
    assert memo.remembered(state) == ({}, {})
    old = {"fingerprints": {"5": "0123456789abcdef"}, "deals": {"5": 4, "6": None}}
    assert memo.remembered(old) == ({5: "0123456789abcdef"}, {5: 4, 6: None})
    assert memo.remembered({}) == ({}, {})
