"""Full scans of ONLYOFFICE list endpoints with ``startIndex``/``count``.

``total`` is cached for 30 s across filters and ``nextIndex`` is off by one, so neither is used: the offset
advances by the rows actually received and a short page ends the scan. Because invoices are deleted hard
(and, in number order, inserted anywhere), an offset can shift under the reader; every page after the first
therefore starts one row early and must begin with the previous page's last row. If it does not, the scan is
read again (merge on id makes the rows already yielded harmless) instead of silently skipping a row, which
the delete detection would then report as deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from dlt.sources.helpers.rest_client.paginators import BasePaginator

from .client import OnlyofficeClient
from .helpers import fail
from .settings import ENV, SORT_BY_ID, SORT_FALLBACK

log = logging.getLogger(__name__)


class ScanShifted(Exception):
    """Rows were inserted or deleted before the current offset while the list was being read."""


class SortIgnored(Exception):
    """The server does not know ``sortBy=id`` (before 12.7) and used its default order."""


class OverlapPaginator(BasePaginator):
    def __init__(self, page_size: int, ascending_ids: bool):
        super().__init__()
        self.page_size, self.ascending_ids = page_size, ascending_ids
        self.read = 0  # distinct rows consumed so far
        self.last_id: int | None = None
        self.pages = 0

    def init_request(self, request) -> None:
        request.params = {**(request.params or {}), "startIndex": 0, "count": self.page_size}

    def update_state(self, response, data=None) -> None:
        data = data if data is not None else []
        self.pages += 1
        if len(data) > self.page_size:
            raise fail(f"a list page has {len(data)} rows, more than the {self.page_size} asked for.",
                       f"set {ENV}PAGE_SIZE to at most the portal's maxPage (1000).")
        for row in data:
            if not isinstance(row, dict) or not isinstance(row.get("id"), int):
                raise fail(f"a list page has a row without an integer id: {str(row)[:100]}.",
                           "the portal returned a malformed page; retry later. Nothing from this run was loaded.")
        full = len(data) == self.page_size
        if self.last_id is not None:
            if not data or data[0]["id"] != self.last_id:
                raise ScanShifted()
            del data[0]  # the overlap row was yielded with the previous page; the list is yielded after this
        ids = [row["id"] for row in data]
        if self.ascending_ids and any(b <= a for a, b in zip([self.last_id or -1, *ids], ids, strict=False)):
            raise SortIgnored()
        if data:
            self.last_id = ids[-1]
        self.read += len(data)
        self._has_next_page = full

    def update_request(self, request) -> None:
        request.params["startIndex"] = self.read - 1


def scan(client: OnlyofficeClient, path: str, page_size: int, sort_by: str, max_attempts: int,
         result: dict, params: dict | None = None) -> Iterator[tuple[int, list[dict]]]:
    """Yield ``(scan_no, rows)`` for every page of one complete, consistent read of ``path``; the ids of
    that read go to ``result["ids"]``, the ids yielded by any attempt to ``result["yielded"]`` (a row from an
    abandoned attempt that the final one lacks was deleted meanwhile), the pages requested to ``"pages"``."""
    pages = 0
    yielded: set[int] = set()
    for attempt in range(1, max_attempts + 1):
        paginator = OverlapPaginator(page_size, ascending_ids=sort_by == SORT_BY_ID)
        ids: set[int] = set()
        try:
            for page in client.paginate(path, params={**(params or {}), "sortBy": sort_by},
                                        paginator=paginator, hooks={"response": []}):
                ids.update(row["id"] for row in page)
                yielded.update(ids)
                yield attempt, list(page)
        except ScanShifted:
            pages += paginator.pages
            log.warning("ONLYOFFICE: %s changed while it was read (attempt %s); reading it again", path, attempt)
            continue
        except SortIgnored:
            pages += paginator.pages
            log.warning("ONLYOFFICE: the portal ignores sortBy=id (a version before 12.7); using sortBy=%s",
                        SORT_FALLBACK)
            sort_by = SORT_FALLBACK
            continue
        result.update(ids=ids, yielded=yielded, pages=pages + paginator.pages, scans=attempt, sort_by=sort_by)
        return
    raise fail(f"{path} kept changing while it was read ({max_attempts} attempts).",
               f"rerun when the portal is quieter, or raise {ENV}MAX_SCAN_ATTEMPTS. Nothing from this run was loaded.")
