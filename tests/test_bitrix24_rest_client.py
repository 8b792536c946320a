"""Bitrix24 on dlt's RESTClient: start/next paging of one method, the OAuth auth class signing request bodies,
webhook secrets kept out of dlt's request log."""

from __future__ import annotations

import logging

from crm_invoices.sources.bitrix24.auth import Bitrix24OAuth, TokenStore, WebhookAuth
from crm_invoices.sources.bitrix24.client import Bitrix24Client
from crm_invoices.sources.common import make_session

FAST = dict(requests_per_second=500, burst=500, timeout=10, max_attempts=2, backoff_factor=0)


def test_start_next_paging_reads_every_page_of_one_method(make_sandbox):
    sandbox = make_sandbox(invoices={"bitrix24": 130}, bitrix24={"requests_per_second": 500, "burst": 500})
    client = Bitrix24Client(WebhookAuth(sandbox["bitrix24"].webhook_url(sandbox.base_url)), **FAST)
    params = {"order": {"ID": "ASC"}, "select": ["ID"]}
    pages = list(client.pages("crm.invoice.list", params))
    ids = [int(r["ID"]) for page in pages for r in page]
    legacy = [i for i in sandbox.world.invoices["bitrix24"] if i.kind != "smart"]
    assert len(pages) == -(-len(legacy) // 50) and len(ids) == len(set(ids)) == len(legacy)
    assert ids == sorted(ids)
    # a start in the middle reads from there on
    rest = [int(r["ID"]) for page in client.pages("crm.invoice.list", params, start=50) for r in page]
    assert rest == ids[50:]


def test_oauth_signs_the_body_refreshes_once_and_never_puts_the_token_in_the_url(make_sandbox, tmp_path):
    sandbox = make_sandbox(invoices={"bitrix24": 5}, bitrix24={"requests_per_second": 500, "burst": 500})
    provider = sandbox["bitrix24"]
    env = provider.oauth_env(sandbox.base_url)
    access = Bitrix24OAuth(env["SOURCES__BITRIX24__PORTAL_URL"], env["SOURCES__BITRIX24__CLIENT_ID"],
                           env["SOURCES__BITRIX24__CLIENT_SECRET"], env["SOURCES__BITRIX24__REFRESH_TOKEN"],
                           env["SOURCES__BITRIX24__OAUTH_TOKEN_URL"], TokenStore(tmp_path / "oauth.json"),
                           make_session(timeout=10, max_attempts=2, backoff_factor=0))
    client = Bitrix24Client(access, **FAST)
    seen: list[str] = []
    provider.faults.on_request = lambda prov, request, n: seen.append(request.path + "?" + str(request.query))
    assert len(client.call("crm.currency.list")["result"]) == 4
    assert provider.refreshes == 1 and access.access_token
    provider.expire_access_tokens()  # the next call answers expired_token: refreshed, the same request again
    assert len(client.call("crm.currency.list")["result"]) == 4
    assert provider.refreshes == 2
    assert not any(access.access_token in s for s in seen)


def test_webhook_secrets_never_reach_dlts_request_log(make_sandbox):
    import dlt
    from dlt.common import logger as dlt_logger
    from dlt.common.configuration.specs.runtime_configuration import RuntimeConfiguration

    sandbox = make_sandbox(invoices={"bitrix24": 5}, bitrix24={"requests_per_second": 500, "burst": 500})
    provider = sandbox["bitrix24"]
    client = Bitrix24Client(WebhookAuth(provider.webhook_url(sandbox.base_url)), **FAST)
    before = dlt_logger.LOGGER
    level = logging.getLogger("dlt").level
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    dlt.current.run_context().initialize_runtime(RuntimeConfiguration(log_level="INFO"))  # dlt logs each URL
    keep = Keep()
    logging.getLogger("dlt").addHandler(keep)
    try:
        client.call("crm.currency.list")
    finally:
        logging.getLogger("dlt").removeHandler(keep)
        logging.getLogger("dlt").setLevel(level)
        dlt_logger.LOGGER = before
    logged = "\n".join(records)
    assert "/rest/1/***/crm.currency.list" in logged
    assert provider.portal.webhook_secret not in logged
