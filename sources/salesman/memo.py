"""What a run remembers of every row it loaded (dlt resource state): each row's id, deal and list fingerprint,
packed into one string instead of two JSON objects of a million entries.

A million rows as ``{"crid": "fingerprint"}`` and ``{"crid": did}`` cost hundreds of MB of Python objects and
a JSON encode + zlib of ~60 MB on every commit; packed (three little-endian arrays: crid and did as int64,
the fingerprint's 8 bytes, zlib, base64) they are ~12 MB of one string. States written before the packing
(``fingerprints`` / ``deals``) are still read.

A run holds them as :class:`Memory`, arrays rather than dicts (8 bytes a value instead of ~100 per entry):
:func:`remembered_rows` reads them, :func:`remember_rows` packs them; :func:`remembered` / :func:`remember`
are the same as dicts and tuples.
"""

from __future__ import annotations

import base64
import sys
import zlib
from array import array
from dataclasses import dataclass, field

KEY = "rows"
NO_DEAL = -1  # a row without a deal (did None)
FP_BYTES = 8  # the fingerprint's digest (16 hex characters)


def _little(values: array) -> array:
    if sys.byteorder == "big":
        values.byteswap()
    return values


def hex_fp(value: int) -> str:
    """A fingerprint held as a number, as ``helpers.fingerprint`` writes it (16 hex digits)."""
    return f"{value:0{2 * FP_BYTES}x}"


def remembered(state: dict) -> tuple[dict[int, str], dict[int, int | None]]:
    """crid -> fingerprint and crid -> did of the rows the last successful run loaded (either format), as
    dicts: :func:`remembered_rows` read into Python objects."""
    known = remembered_rows(state)
    return ({crid: hex_fp(fp) for crid, fp in zip(known.crids, known.fps, strict=True)},
            {crid: None if did == NO_DEAL else did for crid, did in zip(known.deal_crids, known.dids, strict=True)})


def remember(state: dict, rows: list[tuple[int, int | None, str]]) -> None:
    """:func:`remember_rows` of ``(crid, did, fingerprint)`` tuples."""
    remember_rows(state, array("q", (r[0] for r in rows)), array("q", (NO_DEAL if r[1] is None else r[1] for r in rows)),
                  array("Q", (int(r[2], 16) for r in rows)))


@dataclass
class Memory:
    """The rows the last successful run loaded, as arrays sorted by crid: ``crids`` with their fingerprints
    (``fps``, the digest as an unsigned 64-bit number), ``deal_crids`` with their deals (``dids``, ``NO_DEAL``
    for None). Both id arrays are one and the same but in a state from before the packing, whose two
    objects need not hold the same ids."""

    crids: array = field(default_factory=lambda: array("q"))
    fps: array = field(default_factory=lambda: array("Q"))
    deal_crids: array = None
    dids: array = field(default_factory=lambda: array("q"))

    def __post_init__(self):
        if self.deal_crids is None:
            self.deal_crids = self.crids

    def __len__(self) -> int:
        return len(self.crids)


def _big(values: array) -> array:
    if sys.byteorder == "little":
        values.byteswap()
    return values


def remembered_rows(state: dict) -> Memory:
    """:func:`remembered` as a :class:`Memory` (either format), without a Python object per row."""
    if KEY in state:
        n = int(state[KEY]["n"])
        raw = zlib.decompress(base64.b64decode(state[KEY]["data"]))
        crids, dids, fps = array("q"), array("q"), array("Q")
        crids.frombytes(raw[:8 * n])
        dids.frombytes(raw[8 * n:16 * n])
        fps.frombytes(raw[16 * n:])  # the digest's bytes in their order: a big-endian number
        del raw
        _little(crids), _little(dids), _big(fps)
        if any(a > b for a, b in zip(crids, crids[1:], strict=False)):  # packed in crid order; an older writer may not have
            order = sorted(range(n), key=crids.__getitem__)
            crids, dids, fps = (array(a.typecode, (a[i] for i in order)) for a in (crids, dids, fps))
        return Memory(crids, fps, None, dids)
    fps = sorted((int(c), int(fp, 16)) for c, fp in state.get("fingerprints", {}).items())
    deals = sorted((int(c), NO_DEAL if d is None else int(d)) for c, d in state.get("deals", {}).items())
    return Memory(array("q", (c for c, _ in fps)), array("Q", (fp for _, fp in fps)),
                  array("q", (c for c, _ in deals)), array("q", (d for _, d in deals)))


def remember_rows(state: dict, crids: array, dids: array, fps: array) -> None:
    """:func:`remember` of rows given as three arrays: crid (int64, ascending), did (int64, ``NO_DEAL`` for
    None) and fingerprint (the digest as an unsigned 64-bit number); the same packed format."""
    fp_bytes = _big(array("Q", fps)).tobytes()
    blob = zlib.compress(_little(array("q", crids)).tobytes() + _little(array("q", dids)).tobytes() + fp_bytes, 6)
    state[KEY] = {"n": len(crids), "data": base64.b64encode(blob).decode("ascii")}
    state.pop("fingerprints", None)
    state.pop("deals", None)
