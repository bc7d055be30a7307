"""What a company cluster needs, as configuration: mutual TLS, hostname checks, OAUTHBEARER."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from pipelines.config import KafkaSettings, SettingsError
from pipelines.kafka_oauth import ClientCredentialsTokenProvider, TokenError


def test_mutual_tls_and_hostname_checks() -> None:
    config = KafkaSettings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": "/etc/kafka/ca.pem",
            "KAFKA_SSL_CERTFILE": "/etc/kafka/client.pem",
            "KAFKA_SSL_KEYFILE": "/etc/kafka/client.key",
            "KAFKA_SSL_PASSWORD": "key-secret",
            "KAFKA_SSL_CHECK_HOSTNAME": "false",
        }
    ).client_config()
    assert config == {
        "bootstrap_servers": ["127.0.0.1:9092"],
        "security_protocol": "SSL",
        "ssl_cafile": "/etc/kafka/ca.pem",
        "ssl_certfile": "/etc/kafka/client.pem",
        "ssl_keyfile": "/etc/kafka/client.key",
        "ssl_password": "key-secret",
        "ssl_check_hostname": False,
    }
    # hostnames are checked unless turned off (kafka-python's default, left in place)
    assert "ssl_check_hostname" not in KafkaSettings.from_env({}).client_config()
    assert "key-secret" not in repr(KafkaSettings.from_env({"KAFKA_SSL_PASSWORD": "key-secret"}))


@pytest.fixture
def token_endpoint() -> Iterator[tuple[str, list[dict[str, list[str]]]]]:
    asked: list[dict[str, list[str]]] = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            asked.append(form)
            ok = form.get("client_secret") == ["s3cret"]
            body = {"access_token": f"token-{len(asked)}", "expires_in": 3600} if ok else {}
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(body).encode())

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token", asked
    server.shutdown()


def test_oauthbearer_tokens_come_from_the_client_credentials_endpoint(token_endpoint) -> None:
    url, asked = token_endpoint
    config = KafkaSettings.from_env(
        {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "OAUTHBEARER",
            "KAFKA_SASL_OAUTH_TOKEN_URL": url,
            "KAFKA_SASL_OAUTH_CLIENT_ID": "trackflow",
            "KAFKA_SASL_OAUTH_CLIENT_SECRET": "s3cret",
            "KAFKA_SASL_OAUTH_SCOPE": "kafka",
        }
    ).client_config()
    provider = config["sasl_oauth_token_provider"]
    assert config["sasl_mechanism"] == "OAUTHBEARER" and "sasl_plain_username" not in config
    assert provider.token() == "token-1"
    assert provider.token() == "token-1"  # kept until shortly before it expires
    assert asked == [
        {
            "grant_type": ["client_credentials"],
            "client_id": ["trackflow"],
            "client_secret": ["s3cret"],
            "scope": ["kafka"],
        }
    ]
    wrong = ClientCredentialsTokenProvider(url, "trackflow", "wrong")
    with pytest.raises(TokenError, match="gave no token"):
        wrong.token()


def test_oauthbearer_without_its_endpoint_is_a_clear_error() -> None:
    settings = KafkaSettings.from_env({"KAFKA_SASL_MECHANISM": "OAUTHBEARER"})
    with pytest.raises(SettingsError, match="KAFKA_SASL_OAUTH_TOKEN_URL"):
        settings.client_config()
