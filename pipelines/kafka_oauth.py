"""SASL/OAUTHBEARER for Kafka: tokens from an OAuth 2.0 client-credentials endpoint.

kafka-python asks a token provider for a token at every connection; this one fetches a token
with the configured client id and secret, keeps it until shortly before it expires, and fetches a
new one then (MSK, Confluent Cloud, Strimzi with Keycloak and the like all issue such tokens).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
import urllib.request

from kafka.net.sasl.oauth import AbstractTokenProvider

# fetch a new token this long before the old one expires
REFRESH_MARGIN_S = 60
TIMEOUT_S = 10


class TokenError(RuntimeError):
    """The token endpoint did not hand out a token; the message says why."""


class ClientCredentialsTokenProvider(AbstractTokenProvider):
    def __init__(
        self, token_url: str, client_id: str, client_secret: str, scope: str | None = None
    ) -> None:
        super().__init__()
        self.token_url = token_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.scope = scope
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                self._token, lifetime = self._fetch()
                self._expires_at = time.monotonic() + max(0.0, lifetime - REFRESH_MARGIN_S)
            return self._token

    def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }
        if self.scope:
            form["scope"] = self.scope
        request = urllib.request.Request(
            self.token_url,
            data=urllib.parse.urlencode(form).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as answer:  # noqa: S310
                body = json.loads(answer.read())
        except (OSError, ValueError) as exc:
            raise TokenError(
                f"KAFKA_SASL_OAUTH_TOKEN_URL={self.token_url} gave no token: {exc}"
            ) from exc
        if "access_token" not in body:
            raise TokenError(
                f"KAFKA_SASL_OAUTH_TOKEN_URL={self.token_url} answered no access_token"
            )
        return str(body["access_token"]), float(body.get("expires_in", 300))
