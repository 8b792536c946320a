"""ONLYOFFICE API plumbing: token auth, the envelope, errors users can act on, exact JSON."""

from __future__ import annotations

import threading
from typing import Any

import requests as _requests
from dlt.sources.helpers.rest_client import RESTClient
from requests.auth import AuthBase

from ..common import SourceError, loads_exact, looks_like_json_object, make_session
from .settings import API_PREFIX, AUTH_PATH, CREDENTIALS_FIX, ENV, SOURCE_NAME

RETRY_STATUSES = (429, 502, 503, 504)


def fail(cause: str, fix: str) -> SourceError:
    return SourceError(SOURCE_NAME, cause, fix)


def _error_message(resp) -> str | None:
    """``error.message`` of an ``{status: 1, error: {...}}`` envelope, or None when the body is not one."""
    if not looks_like_json_object(resp):
        return None
    try:
        body = loads_exact(resp.content)
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("status") == 1 and isinstance(body.get("error"), dict):
        return str(body["error"].get("message") or "")
    return None


def should_retry(resp, exc) -> bool:
    """Beyond 429/502/503/504 (with Retry-After) and connection errors: a 500 that is not the server's own
    error envelope (a proxy's HTML page) and a 200 whose JSON is cut off. A 500 *with* an envelope is an
    exception the server reported (a wrong password, a bug): the same request fails the same way again, and
    on the login endpoint every retry counts towards the brute-force lock."""
    if resp is None:
        return False
    if resp.status_code == 500:
        return _error_message(resp) is None
    return resp.status_code == 200 and bool(resp.content) and not looks_like_json_object(resp)


def _reason(exc: Exception) -> str:
    text = str(exc)
    # urllib3 messages repeat the pool and URL; the class name and the last clause are what users need.
    return text.rsplit(":", 1)[-1].strip(" )'\"") or type(exc).__name__


class PortalAuth(AuthBase):
    """The raw token in ``Authorization``. With username/password the token is requested once per run and
    kept in memory only: a token is a credential, so it never goes to dlt state, logs or the warehouse."""

    def __init__(self, base_url: str, session, token: str | None, username: str | None, password: str | None):
        self.url = f"{base_url}{API_PREFIX}{AUTH_PATH}"
        self.session, self.username, self.password = session, username, password
        self._token = token or None
        self._lock = threading.Lock()
        self.logins = 0

    @property
    def can_login(self) -> bool:
        return bool(self.username and self.password)

    def __call__(self, request):
        request.headers["Authorization"] = self.token()
        return request

    def token(self) -> str:
        with self._lock:
            if self._token is None:
                self._token = self._login()
            return self._token

    def renew(self, stale: str | None) -> bool:
        """After a 401: log in again, once per stale token (threads may all hit the same 401)."""
        if not self.can_login:
            return False
        with self._lock:
            if self._token == stale:
                self._token = self._login()
            return True

    def _login(self) -> str:
        self.logins += 1
        try:
            resp = self.session.post(self.url, json={"userName": self.username, "password": self.password},
                                     headers={"Accept": "application/json"})
        except _requests.RequestException as exc:
            raise fail(f"cannot reach the portal at {self.url} ({type(exc).__name__}: {_reason(exc)}).",
                       f"check {ENV}BASE_URL and that the portal is up; nothing was loaded.") from None
        message = _error_message(resp)
        if message and "too many" in message.lower():
            raise fail(f"the portal locked the login after repeated failures ({message}).",
                       f"wait a minute, then check {ENV}USERNAME and {ENV}PASSWORD.")
        if message is not None or resp.status_code in (401, 403):
            raise fail(f"the portal rejected the username or password (HTTP {resp.status_code}: "
                       f"{message or resp.reason}).", CREDENTIALS_FIX + ".")
        body = _json(resp, "authentication")
        token = (body.get("response") or {}).get("token") if isinstance(body, dict) else None
        if not token:
            flags = sorted(k for k in (body.get("response") or {}) if k in ("sms", "tfa", "tfaKey"))
            raise fail(f"authentication returned no token{' (two-factor authentication: ' + ', '.join(flags) + ')' if flags else ''}.",
                       CREDENTIALS_FIX + ".")
        return str(token)


def _json(resp, what: str) -> Any:
    if not looks_like_json_object(resp):
        snippet = resp.content[:120].decode("utf-8", "replace").replace("\n", " ")
        raise fail(f"{what} returned a malformed page (HTTP {resp.status_code}, not a complete JSON object: "
                   f"{snippet!r}).", "this is a server-side error; retry later. Nothing from this run was loaded.")
    try:
        return loads_exact(resp.content)
    except ValueError as exc:
        raise fail(f"{what} returned malformed JSON ({exc}).", "retry later; nothing from this run was loaded.") from None


class NotFound(Exception):
    """404 for one object: it was deleted between the list and the detail call."""


class OnlyofficeClient(RESTClient):
    """dlt's RESTClient with ONLYOFFICE's rules: exact decimals (the stock ``response.json()`` goes through
    float), envelope errors turned into SourceErrors after dlt's retries, and one re-login on a 401."""

    def __init__(self, base_url: str, *, token: str | None, username: str | None, password: str | None,
                 timeout: float, max_attempts: int, backoff_factor: float):
        self.root = base_url.rstrip("/")
        retrying = make_session(timeout=timeout, max_attempts=max_attempts, backoff_factor=backoff_factor,
                                retry_condition=should_retry, status_codes=RETRY_STATUSES)
        self._retrying = retrying
        auth = PortalAuth(self.root, retrying, token, username, password)
        super().__init__(base_url=f"{self.root}{API_PREFIX}crm/", headers={"Accept": "application/json"},
                         auth=auth, data_selector="response", session=retrying.session)
        self.max_attempts = max_attempts

    # The retrying session is per thread in dlt's Client: detail calls run on a small pool.
    @property
    def session(self):  # type: ignore[override]
        return self._retrying.session

    @session.setter
    def session(self, value) -> None:
        pass

    def _send_request(self, request, **kwargs):
        # Deliberately overriding RESTClient's private hook: a 401 needs a fresh token and the *same*
        # request again, which neither response hooks nor response_actions can do.
        for attempt in (1, 2):
            sent_token = self.auth.token()
            try:
                resp = super()._send_request(request, **kwargs)
            except SourceError:
                raise
            except _requests.RequestException as exc:
                raise fail(f"cannot reach the portal at {request.url} ({type(exc).__name__}: {_reason(exc)}).",
                           f"check {ENV}BASE_URL and that the portal is up; the run loaded nothing and the next "
                           "run starts from the same state.") from None
            if resp.status_code == 401 and attempt == 1 and self.auth.renew(sent_token):
                continue
            return resp
        return resp

    def extract_response(self, response, data_selector):
        return self.checked(response, response.request.path_url)

    def checked(self, resp, what: str) -> Any:
        """``response`` of a successful envelope, or a SourceError that says what to do."""
        what = what.split("?", 1)[0].removeprefix(API_PREFIX)
        status = resp.status_code
        if status == 401:
            how = ("the token from the login was refused too" if self.auth.can_login else
                   "the token is wrong, expired, or its sessions were logged out")
            raise fail(f"the portal refused the credentials for {what} (HTTP 401 {resp.text.strip()[:40]!r}; {how}).",
                       CREDENTIALS_FIX + ".")
        message = _error_message(resp)
        if status == 404 and message is not None:
            raise NotFound(what)
        if status in (402, 403):
            raise fail(f"{what} answered HTTP {status} ({message or resp.reason}).",
                       "the API user must be a CRM administrator with access to the CRM module, on a paid portal "
                       f"({ENV}USERNAME / {ENV}TOKEN).")
        if message is not None or status >= 400:
            retried = f" after {self.max_attempts} attempts" if status in RETRY_STATUSES or status == 500 else ""
            raise fail(f"{what} failed with HTTP {status}{retried}: {message or resp.reason}.",
                       "retry later; if it persists, check the portal's logs. Nothing from this run was loaded.")
        body = _json(resp, what)
        if not isinstance(body, dict) or body.get("status") != 0 or "response" not in body:
            keys = sorted(body) if isinstance(body, dict) else type(body).__name__
            raise fail(f"{what} returned an unexpected envelope (keys {keys}).",
                       f"check that {ENV}BASE_URL is the portal's root URL (the API lives at <base_url>/api/2.0/).")
        return body["response"]

    def fetch(self, path: str, params: dict | None = None) -> Any:
        return self.checked(self.get(path, params=params), f"crm/{path}")
