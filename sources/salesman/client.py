"""SalesMan's HTTP client: dlt's retrying session, every call a thin POST on its connection pool
(``sources/http.py``: same retries, timeout, headers and exceptions; dlt's ``RESTClient`` with the API key
through dlt's ``APIKeyAuth`` behind a proxy or a redirect), and the errors a user can act on.

The API reads a JSON body only when ``Content-Type`` is exactly ``application/json`` (anything else, even
``; charset=utf-8``, makes it ignore the body and the auth headers), and then takes the key and the login
from the ``apikey``/``login`` headers (``salesman_real/transport__*``): so the key travels as a header.
"""


import threading
from typing import ClassVar

import requests
from dlt.common.configuration import configspec
from dlt.common.configuration.specs import CredentialsConfiguration
from dlt.common.typing import TSecretStrValue
from dlt.sources.helpers.rest_client import RESTClient
from dlt.sources.helpers.rest_client.auth import APIKeyAuth

from ..common import MalformedBody, SourceError, is_malformed, make_session, reason, response_json
from ..http import Redirected, ThinClient, json_body
from .settings import API_PREFIX, AUTH_ERROR_CODES, SOURCE_NAME


@configspec
class SalesmanCredentials(CredentialsConfiguration):
    """Where the CRM is and who calls it: ``SOURCES__SALESMAN__BASE_URL``, ``..._LOGIN``, ``..._API_KEY`` (or
    ``[sources.salesman]`` in ``.dlt/secrets.toml``)."""

    base_url: str = None
    """the CRM's root URL (the API is at ``<base_url>/developer/v3/``)"""
    login: str = None
    """the API user's login: a dedicated user with an all-seeing role and personal time shift 0"""
    api_key: TSecretStrValue = None
    """the account's API key (Настройки → API)"""

    # the settings sit in the source's own section (sources.salesman.api_key), not in a "credentials" one
    __section__: ClassVar[str] = None


def fail(cause: str, fix: str) -> SourceError:
    return SourceError(SOURCE_NAME, cause, fix)


def _php_error_page(resp: requests.Response | None, exc: BaseException | None) -> bool:
    # A PHP fatal error answers HTTP 200 with an HTML body (or a cut-off one): transient (deadlocks), so retry.
    return resp is not None and resp.status_code == 200 and bool(resp.content) and is_malformed(resp)


class SalesmanClient:
    """POSTs each call's params as the JSON body of ``/developer/v3/<method>`` and returns the answer's
    object, or raises :class:`SourceError` naming the cause and the fix. Safe to call from several threads:
    dlt's sessions (and so their retry policies) are per thread, on one connection pool. The calls go on
    that pool directly (``ThinClient``: ~4,400 calls per 100,000 invoices, 1.1 ms of client CPU each through
    RESTClient); behind a proxy, or once the server redirected, each thread has its own ``RESTClient``.
    """

    def __init__(self, credentials: SalesmanCredentials, *, timeout: float = 60, max_attempts: int = 5,
                 backoff_factor: float = 1.0):
        self.base_url = credentials.base_url.rstrip("/")
        self.http = make_session(timeout=timeout, max_attempts=max_attempts, backoff_factor=backoff_factor,
                                 retry_condition=_php_error_page)
        self.auth = APIKeyAuth(name="apikey", api_key=credentials.api_key, location="header")
        self.headers = {"Content-Type": "application/json", "login": credentials.login}
        self.timeout = timeout
        self.thin = ThinClient(self.http, self.base_url + API_PREFIX,
                               {**self.headers, self.auth.name: self.auth.api_key})
        self.max_attempts = max(1, max_attempts)
        self.requests_made = 0  # calls made (each may have been retried); read by the benchmark
        self._count_lock = threading.Lock()
        self._local = threading.local()

    @property
    def rest(self) -> RESTClient:
        rest = getattr(self._local, "rest", None)
        if rest is None:
            rest = self._local.rest = RESTClient(self.base_url + API_PREFIX, headers=self.headers, auth=self.auth,
                                                 session=self.http.session)
        return rest

    def call(self, method: str, params: dict | None = None) -> dict:
        with self._count_lock:
            self.requests_made += 1
        try:
            resp = self._post(method, params or {})
        except requests.Timeout:
            raise fail(f"{method} did not answer within {self.timeout:g} s, {self.max_attempts} times in a row "
                       f"(the server at {self.base_url} stopped answering).",
                       "check that the server is up and not overloaded, or raise SOURCES__SALESMAN__REQUEST_TIMEOUT; "
                       "nothing from this run was loaded and the next run starts from the same state.") from None
        except requests.exceptions.ChunkedEncodingError as exc:
            raise fail(f"{method}: the connection broke in the middle of an answer, {self.max_attempts} times in a "
                       f"row ({reason(exc)}).",
                       "check the network path to the server (proxy, VPN, load balancer) and retry; nothing from "
                       "this run was loaded and the next run starts from the same state.") from None
        except requests.RequestException as exc:
            raise fail(f"cannot reach the API at {self.base_url}{API_PREFIX}{method} ({type(exc).__name__}: "
                       f"{reason(exc)}).",
                       "check SOURCES__SALESMAN__BASE_URL and that the server is up; the run loaded nothing "
                       "and the next run starts from the same state.") from None
        return self._body(method, resp)

    def _post(self, method: str, params: dict) -> requests.Response:
        if self.thin.usable:
            try:
                return self.thin.request("POST", method, body=json_body(params))
            except Redirected:
                pass  # this one and every later call through RESTClient, which follows redirects
        return self.rest.post(method, json=params)

    @staticmethod
    def _body(method: str, resp: requests.Response) -> dict:
        if resp.status_code != 200:
            raise fail(f"{method} answered HTTP {resp.status_code} after retries.",
                       "the server is failing; retry later. Nothing from this run was loaded.")
        if not resp.content.strip():
            raise fail(f"{method} answered an empty body: this URL is not a SalesMan API v3 endpoint.",
                       "set SOURCES__SALESMAN__BASE_URL to the CRM's root URL (the API lives at "
                       "<base_url>/developer/v3/).")
        try:
            body = response_json(resp)
        except MalformedBody as exc:
            raise fail(f"{method} returned a malformed page ({exc}).",
                       "this is a server-side error (often a PHP fatal error); retry later. Nothing from this "
                       "run was loaded.") from None
        if body.get("result") == "Error" or "error" in body:
            error = body.get("error") or {}
            code = error.get("code")
            text = error.get("text", "")
            try:
                code = int(code)
            except (TypeError, ValueError):
                pass
            if code in AUTH_ERROR_CODES:
                raise fail(f"the API rejected the credentials (error {code}: {text}).",
                           "check SOURCES__SALESMAN__API_KEY (Настройки → API) and SOURCES__SALESMAN__LOGIN "
                           "(a user of the account whose role sees all invoices).")
            raise fail(f"{method} failed with error {code}: {text}.",
                       "check the request parameters; this is likely a bug, please report it.")
        return body
