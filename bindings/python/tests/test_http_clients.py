"""requests and httpx with a qlam provider against a local server that rotates the token:
the refused token gets one renewal and one retry; any other 401 is left alone."""

from __future__ import annotations

import http.server
import threading

import httpx
import pytest
import requests

from qlam import AuthClient
from qlam.httpx_auth import QlamAuth as HttpxAuth
from qlam.requests_auth import QlamAuth as RequestsAuth


class Server:
    """Accepts only ``Bearer new``; seeing ``Bearer old`` it rotates the token file (as a
    server that revoked it would make its client fetch another) and answers 401."""

    def __init__(self, token_file, challenge):
        self.seen = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                auth = self.headers.get("Authorization")
                server.seen.append(auth)
                if auth == "Bearer new":
                    self.send_response(200)
                    self.end_headers()
                    self.wfile.write(b"ok")
                    return
                token_file.write_text("new\n")
                self.send_response(401)
                self.send_header("WWW-Authenticate", challenge)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/api"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(params=["requests", "httpx"])
def get(request):
    def requests_get(url, auth):
        r = requests.get(url, auth=RequestsAuth(*auth), timeout=10)
        return r.status_code, len(r.history)

    def httpx_get(url, auth):
        r = httpx.get(url, auth=HttpxAuth(*auth), timeout=10)
        return r.status_code, len(r.history)

    return {"requests": requests_get, "httpx": httpx_get}[request.param]


def config_with_token_file(home):
    token_file = home.path / "token.txt"
    token_file.write_text("old\n")
    home.write_config(
        '[contexts.c]\n[[contexts.c.auth_providers]]\nname = "api"\nprovider = "token"\n'
        f'file = "{token_file}"\n'
    )
    return token_file


def test_invalid_token_renews_once_and_retries_once(home, get):
    token_file = config_with_token_file(home)
    server = Server(token_file, 'Bearer realm="api", error="invalid_token", error_description="revoked"')
    try:
        status, _ = get(server.url, (AuthClient(interactive=False), "api"))
        assert status == 200
        assert server.seen == ["Bearer old", "Bearer new"]
    finally:
        server.close()


def test_any_other_401_is_returned_as_it_is(home, get):
    token_file = config_with_token_file(home)
    server = Server(token_file, 'Bearer realm="api", error="insufficient_scope"')
    try:
        status, _ = get(server.url, (AuthClient(interactive=False), "api"))
        assert status == 401
        assert server.seen == ["Bearer old"]
    finally:
        server.close()
