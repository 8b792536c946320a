"""Two ways to call a portal: an inbound webhook (the secret sits in the URL path: no request auth) or an OAuth
app (:class:`Bitrix24OAuth`, a dlt ``AuthConfigBase`` that puts ``auth=<access token>`` into each request body
and refreshes it on ``expired_token`` with a refresh token that rotates on every use)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import requests as _requests
from dlt.sources.helpers.rest_client.auth import AuthConfigBase

from ..common import SourceError, loads_exact, redact, redact_webhooks
from .settings import ENV, SOURCE_NAME

WEBHOOK_SHAPE = re.compile(r"^https?://[^/]+/rest/\d+/[^/]+/?$")


class WebhookAuth:
    """An inbound webhook: the URL is the credential, so RESTClient gets no auth (``request_auth`` is None)."""

    mode = "webhook"
    request_auth = None

    def __init__(self, webhook_url: str):
        url = webhook_url.strip()
        if not WEBHOOK_SHAPE.match(url):
            raise SourceError(SOURCE_NAME, f"the webhook URL {redact_webhooks(url)!r} is not of the form "
                              "https://PORTAL/rest/USER_ID/SECRET/.",
                              f"set {ENV}WEBHOOK_URL to the inbound webhook URL shown in Bitrix24 "
                              "(Разработчикам → Входящий вебхук), without a method name.")
        self.base_url = url.rstrip("/") + "/"
        self.secrets = [url.rstrip("/").rsplit("/", 1)[-1]]
        self.host = urlsplit(url).hostname or "portal"

    def url_for(self, method: str) -> str:
        return self.base_url + method

    def describe(self, method: str) -> str:
        return redact_webhooks(self.url_for(method))

    def fix_for_rejection(self) -> str:
        return (f"check {ENV}WEBHOOK_URL: the webhook may have been deleted, its secret rotated (an admin "
                "edited it) or it lacks the crm scope.")

    def refresh(self) -> bool:
        return False  # a webhook has nothing to refresh


class TokenStore:
    """Where the rotated refresh token lives between runs: a JSON file readable by its owner only.

    Not dlt state (that is plain JSON in the pipeline directory and copied into the warehouse) and not
    the log. The configured refresh token is remembered by a hash only, so that installing the app again
    (a new configured token) takes precedence over the stored chain.
    """

    def __init__(self, path: Path):
        self.path = path

    def load(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def save(self, data: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(self.path.parent, 0o700)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh)
        os.replace(tmp, self.path)


def _fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


class Bitrix24OAuth(AuthConfigBase):
    """An OAuth app's access to one portal, as a ``requests`` auth for dlt's RESTClient: each request body (JSON)
    gets ``auth=<access token>``, the first one after a refresh; the rotated refresh token lives in the
    :class:`TokenStore`. The token goes into the body, not the URL: dlt logs URLs."""

    mode = "oauth"

    def __init__(self, portal_url: str, client_id: str, client_secret: str, refresh_token: str, token_url: str,
                 store: TokenStore, session):
        self.portal = portal_url.rstrip("/")
        self.base_url = f"{self.portal}/rest/"
        self.client_id, self.client_secret = client_id, client_secret
        self.token_url = token_url
        self.store = store
        self.session = session
        self.host = urlsplit(self.portal).hostname or "portal"
        saved = store.load()
        configured = _fingerprint(refresh_token)
        if saved.get("configured") == configured and saved.get("refresh_token"):
            self.refresh_token, self.access_token = saved["refresh_token"], saved.get("access_token")
        else:
            self.refresh_token, self.access_token = refresh_token, None
        self.configured = configured
        self.refreshes = 0

    @property
    def secrets(self) -> list[str]:
        return [s for s in (self.client_secret, self.refresh_token, self.access_token) if s]

    def url_for(self, method: str) -> str:
        return f"{self.portal}/rest/{method}"

    def describe(self, method: str) -> str:
        return self.url_for(method)

    @property
    def request_auth(self) -> Bitrix24OAuth:
        return self

    def __call__(self, request):
        """Sign a prepared request (again, after a refresh: the ``auth`` of its body is replaced)."""
        if self.access_token is None:
            self.refresh()
        body = json.loads(request.body or b"{}")
        body["auth"] = self.access_token
        request.body = json.dumps(body).encode()
        request.headers["Content-Length"] = str(len(request.body))
        return request

    def fix_for_rejection(self) -> str:
        return (f"check {ENV}CLIENT_ID / {ENV}CLIENT_SECRET and {ENV}REFRESH_TOKEN (reinstall the app to get a "
                "new refresh token if it expired after 180 days) and that the app has the crm scope.")

    def refresh(self) -> bool:
        """Exchange the refresh token for a new pair, persisting the rotated refresh token at once: the old
        one stops working the moment the server answers."""
        form = {"grant_type": "refresh_token", "client_id": self.client_id, "client_secret": self.client_secret,
                "refresh_token": self.refresh_token}
        failure = None
        try:
            resp = self.session.post(self.token_url, data=form)
        except _requests.RequestException as exc:
            failure = (f"cannot reach the OAuth server at {self.token_url} ({type(exc).__name__}).",
                       f"check {ENV}OAUTH_TOKEN_URL and the network.")
        if failure is None:
            try:
                body = loads_exact(resp.content)
            except ValueError:
                body = None
            if not isinstance(body, dict) or "access_token" not in body:
                code = body.get("error") if isinstance(body, dict) else f"HTTP {resp.status_code}"
                text = body.get("error_description", "") if isinstance(body, dict) else ""
                failure = (f"the OAuth server refused to refresh the access token ({code}: {text}).",
                           self.fix_for_rejection())
        if failure is not None:
            raise SourceError(SOURCE_NAME, redact(failure[0], self.secrets), failure[1])
        self.access_token, self.refresh_token = body["access_token"], body["refresh_token"]
        self.store.save({"configured": self.configured, "refresh_token": self.refresh_token,
                         "access_token": self.access_token, "portal": self.portal})
        self.refreshes += 1
        return True
