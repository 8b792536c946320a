"""What a run remembers of every row it loaded (dlt resource state): each row's id, deal and list fingerprint,
packed into one string instead of two JSON objects of a million entries.

A million rows as ``{"crid": "fingerprint"}`` and ``{"crid": did}`` cost hundreds of MB of Python objects and
a JSON encode + zlib of ~60 MB on every commit; packed (three little-endian arrays: crid and did as int64,
the fingerprint's 8 bytes, zlib, base64) they are ~12 MB of one string. States written before the packing
(``fingerprints`` / ``deals``) are still read.
"""

from __future__ import annotations

import base64
import binascii
import sys
import zlib
from array import array

KEY = "rows"
NO_DEAL = -1  # a row without a deal (did None)
FP_BYTES = 8  # the fingerprint's digest (16 hex characters)


def _little(values: array) -> array:
    if sys.byteorder == "big":
        values.byteswap()
    return values


def pack(rows: list[tuple[int, int | None, str]]) -> dict:
    """``(crid, did, fingerprint)`` of each row as the state keeps them."""
    crids = _little(array("q", (r[0] for r in rows)))
    dids = _little(array("q", (NO_DEAL if r[1] is None else r[1] for r in rows)))
    fps = binascii.unhexlify("".join(r[2] for r in rows))
    blob = zlib.compress(crids.tobytes() + dids.tobytes() + fps, 6)
    return {"n": len(rows), "data": base64.b64encode(blob).decode("ascii")}


def unpack(packed: dict) -> tuple[dict[int, str], dict[int, int | None]]:
    """crid -> fingerprint and crid -> did of what :func:`pack` packed."""
    n = int(packed["n"])
    raw = zlib.decompress(base64.b64decode(packed["data"]))
    crids, dids = array("q"), array("q")
    crids.frombytes(raw[:8 * n])
    dids.frombytes(raw[8 * n:16 * n])
    _little(crids), _little(dids)
    hexed = binascii.hexlify(raw[16 * n:]).decode("ascii")
    step = 2 * FP_BYTES
    fps = {crid: hexed[i * step:(i + 1) * step] for i, crid in enumerate(crids)}
    return fps, {crid: None if did == NO_DEAL else did for crid, did in zip(crids, dids, strict=True)}


def remembered(state: dict) -> tuple[dict[int, str], dict[int, int | None]]:
    """crid -> fingerprint and crid -> did of the rows the last successful run loaded (either format)."""
    if KEY in state:
        return unpack(state[KEY])
    fps = {int(c): fp for c, fp in state.get("fingerprints", {}).items()}
    return fps, {int(c): d for c, d in state.get("deals", {}).items()}


def remember(state: dict, rows: list[tuple[int, int | None, str]]) -> None:
    state[KEY] = pack(rows)
    state.pop("fingerprints", None)
    state.pop("deals", None)
