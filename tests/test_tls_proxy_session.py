"""TLS is verified by default; a caller's own requests.Session (CA bundle, mounts) and the
standard proxy variables are honoured."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import threading

import pytest
import requests
from requests.adapters import HTTPAdapter

from ai_lib_sync import AiClient
from ai_lib_sync.errors import AiLibError

from .rawserver import Conn, RawServer, completion_body, json_response


def answer(conn: Conn, index: int) -> bool:
    request = conn.read_request()
    if request is None:
        return False
    conn.server.first_lines.append(request.split(b"\r\n", 1)[0].decode())
    return conn.send(json_response(completion_body("ok")))


@pytest.fixture
def self_signed(tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True, timeout=60)
    return cert, key


class TLSServer(RawServer):
    """The raw loopback server behind TLS with a certificate no CA signed."""

    def __init__(self, cert, key) -> None:
        super().__init__(answer)
        self.first_lines: list[str] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._context = context
        self.base_url = f"https://127.0.0.1:{self.port}"

    def _serve(self, sock) -> None:  # type: ignore[override]
        try:
            wrapped = self._context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            sock.close()
            return
        super()._serve(wrapped)


def test_tls_is_verified_by_default_and_a_user_session_ca_bundle_is_honoured(self_signed):
    cert, key = self_signed
    with TLSServer(cert, key) as server:
        with AiClient("openai/gpt-4o", api_key="sk-test-tls", base_url=server.base_url + "/v1",
                      max_retries=0, timeout=5) as client:
            with pytest.raises(AiLibError) as caught:
                client.chat().user("hi").execute()
            assert caught.value.kind == "connection" and "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
        session = requests.Session()
        session.verify = str(cert)
        with AiClient("openai/gpt-4o", api_key="sk-test-tls", base_url=server.base_url + "/v1",
                      max_retries=0, timeout=5, session=session) as client:
            assert client.chat().user("hi").execute().content == "ok"
        session.close()


def test_proxies_from_the_environment_are_used(monkeypatch):
    with RawServer(answer) as proxy:
        proxy.first_lines = []
        monkeypatch.setenv("HTTP_PROXY", proxy.base_url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        with AiClient("openai/gpt-4o", api_key="sk-test-proxy", base_url="http://api.example.test/v1",
                      max_retries=0, timeout=5) as client:
            assert client.chat().user("hi").execute().content == "ok"
        assert proxy.first_lines == ["POST http://api.example.test/v1/chat/completions HTTP/1.1"]


def test_a_custom_adapter_mounted_on_the_user_session_is_kept():
    seen = threading.Event()

    class Recording(HTTPAdapter):
        def send(self, request, **kwargs):
            seen.set()
            return super().send(request, **kwargs)

    with RawServer(answer) as server:
        server.first_lines = []
        session = requests.Session()
        session.mount(server.base_url, Recording())
        with AiClient("openai/gpt-4o", api_key="sk-test-mount", base_url=server.base_url + "/v1",
                      max_retries=0, timeout=5, session=session) as client:
            assert client.chat().user("hi").execute().content == "ok"
        assert seen.is_set()
        session.close()


def test_a_user_session_proxy_wins_over_the_environment(monkeypatch):
    with RawServer(answer) as proxy, RawServer(answer) as other:
        proxy.first_lines, other.first_lines = [], []
        monkeypatch.setenv("HTTP_PROXY", other.base_url)
        session = requests.Session()
        session.proxies = {"http": proxy.base_url}
        with AiClient("openai/gpt-4o", api_key="sk-test-proxy", base_url="http://api.example.test/v1",
                      max_retries=0, timeout=5, session=session) as client:
            assert client.chat().user("hi").execute().content == "ok"
        assert proxy.first_lines and not other.first_lines
        session.close()
