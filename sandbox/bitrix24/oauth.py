"""The portal's two doors: inbound webhooks and OAuth apps, with the OAuth server that rotates refresh tokens."""

from __future__ import annotations

import secrets
import time as _time

from ..server import Request, Response
from .wire import BitrixError


class OAuthServer:
    """Mixed into the provider: ``portal`` (options), ``_lock``, ``access_tokens`` (token -> expiry, monotonic),
    ``refresh_tokens`` (each works once) and ``refreshes`` live there."""

    def _authenticate(self, request: Request, params: dict) -> str:
        parts = [p for p in request.path[len(self.prefix):].split("/") if p]
        if len(parts) >= 3:  # /rest/<user>/<secret>/<method>
            user, secret, method = parts[0], parts[1], parts[2]
            if user != str(self.portal.webhook_user) or secret != self.portal.webhook_secret:
                raise BitrixError("NO_AUTH_FOUND", "Wrong authorization data", 401)
            return method.removesuffix(".json")
        if len(parts) != 1:
            raise BitrixError("ERROR_METHOD_NOT_FOUND", "Method not found!", 404)
        token = params.pop("auth", None)
        with self._lock:
            expiry = self.access_tokens.get(token) if token else None
        if expiry is None:
            raise BitrixError("NO_AUTH_FOUND" if not token else "invalid_token",
                              "Wrong authorization data" if not token else "Unable to get application by token",
                              401)
        if expiry < _time.monotonic():
            raise BitrixError("expired_token", "The access token provided has expired.", 401)
        return parts[0].removesuffix(".json")

    def _token(self, request: Request) -> Response:
        params = self._params(request)
        if params.get("grant_type") != "refresh_token":
            return Response.json({"error": "invalid_request", "error_description": "grant_type"}, status=400)
        if params.get("client_id") != self.portal.client_id or params.get("client_secret") != self.portal.client_secret:
            return Response.json({"error": "invalid_client", "error_description": "Invalid client"}, status=401)
        with self._lock:
            old = params.get("refresh_token")
            if old not in self.refresh_tokens:
                return Response.json({"error": "invalid_grant", "error_description": "Invalid refresh token"},
                                     status=400)
            self.refresh_tokens.discard(old)  # refresh tokens rotate: each one works once
            access, refresh = secrets.token_hex(16), secrets.token_hex(16)
            self.refresh_tokens.add(refresh)
            self.access_tokens[access] = _time.monotonic() + self.portal.access_ttl
            self.refreshes += 1
        return Response.json({"access_token": access, "refresh_token": refresh, "expires_in": int(self.portal.access_ttl),
                              "expires": int(_time.time() + self.portal.access_ttl), "scope": "crm",
                              "domain": "oauth.bitrix24.tech", "member_id": "sandbox", "status": "L",
                              "client_endpoint": "/rest/", "server_endpoint": "/rest/", "user_id": 1})

    def expire_access_tokens(self) -> None:
        with self._lock:
            for token in self.access_tokens:
                self.access_tokens[token] = 0.0

    def revoke_app(self) -> None:
        """An admin uninstalls the app (or revokes its access): every token stops working."""
        with self._lock:
            self.access_tokens.clear()
            self.refresh_tokens.clear()
