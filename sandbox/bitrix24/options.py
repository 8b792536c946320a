"""Options of the emulated portal: its credentials, clock zone, limits and captured quirks."""

from __future__ import annotations

from dataclasses import dataclass

PAGE = 50  # rows per list page, commands per batch: fixed by the server


@dataclass
class Bitrix24Portal:
    """Options of the emulated portal (``make_sandbox(bitrix24={...})``)."""

    webhook_user: int = 1
    webhook_secret: str = "sbx4hook9q2w7e1r"
    client_id: str = "local.sandbox0000000001"
    client_secret: str = "sbxClientSecret1234567890abcdef"
    refresh_token: str = "sbx-refresh-0000000000000000"  # the one the app was installed with
    access_ttl: float = 3600.0
    timezone: str = "Europe/Moscow"
    requests_per_second: float = 2.0  # the leaky bucket: drain per second ...
    burst: int = 50  # ... and the level above which requests get 503 (Enterprise: 5/s and 250)
    base_currency: str = "RUB"
    batch_errors_as_list: bool = False  # a captured quirk (C7): result_error as a list naming no command
