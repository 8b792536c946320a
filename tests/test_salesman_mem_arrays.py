"""The SalesMan per-row memory held as arrays (memo.Memory, listing.ListedRows / Stale): the same rows,
deals and fingerprints as the dict form, in the same packed state (correctness only; no timing)."""

from crm_invoices.sources.salesman import memo
from crm_invoices.sources.salesman.helpers import fingerprint
from crm_invoices.sources.salesman.listing import ListedRows, Stale, as_array


def test_arrays_pack_to_the_same_state_and_read_back_as_the_dicts():
    rows = [(c, None if c % 7 == 0 else c // 3 + 2**40, fingerprint({"crid": c, "summa": c * 10})) for c in
            range(1, 2000, 3)]
    by_tuples: dict = {}
    memo.remember(by_tuples, rows)
    by_arrays: dict = {}
    memo.remember_rows(by_arrays, [c for c, _d, _f in rows], [memo.NO_DEAL if d is None else d for _c, d, _f in rows],
                       [int(f, 16) for _c, _d, f in rows])
    assert by_arrays == by_tuples
    known = memo.remembered_rows(by_arrays)
    assert list(known.crids) == [c for c, _d, _f in rows]
    assert [f"{v:016x}" for v in known.fps] == [f for _c, _d, f in rows]
    assert list(known.dids) == [memo.NO_DEAL if d is None else d for _c, d, _f in rows]
    old = memo.remembered_rows({"fingerprints": {"5": "0123456789abcdef"}, "deals": {"5": 4, "6": None}})
    assert list(old.crids) == [5] and list(old.deal_crids) == [5, 6] and list(old.dids) == [4, memo.NO_DEAL]


def test_the_latest_version_of_a_row_listed_twice_wins_and_stale_rows_pop():
    listed = ListedRows()
    listed.add([3, 1, 2], ["00000000000000aa", "00000000000000bb", "00000000000000cc"], [30, None, 20])
    listed.add([1], ["00000000000000dd"], [11])
    latest = listed.latest()
    assert latest["crid"].to_pylist() == [1, 2, 3]
    assert [f"{v:016x}" for v in as_array(latest["fp"], "Q")] == ["00000000000000dd", "00000000000000cc",
                                                                     "00000000000000aa"]
    assert latest["did"].to_pylist() == [11, 20, 30]
    stale = Stale(latest["crid"], latest["fp"])
    assert stale.pop([2, 9]) == {2: "00000000000000cc"}
    assert list(stale.crids) == [1, 3] and len(stale) == 2
