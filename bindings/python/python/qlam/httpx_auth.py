"""``httpx`` authentication with a qlam provider::

    import httpx
    from qlam import AuthClient
    from qlam.httpx_auth import QlamAuth

    client = httpx.Client(auth=QlamAuth(AuthClient(), "corp-sso"))

Each request gets the provider's headers. A ``401`` with ``error="invalid_token"`` renews the
credential once and sends the request once more, as qlam's reqwest middleware does. With
``httpx.AsyncClient`` a renewal blocks the event loop while it runs (a cached answer does
not).
"""

from __future__ import annotations

from typing import Generator

import httpx

from ._retry import is_invalid_token
from .client import AuthClient


class QlamAuth(httpx.Auth):
    """Adds ``provider``'s headers; renews and retries once on ``invalid_token``."""

    def __init__(self, client: AuthClient, provider: str) -> None:
        self.client = client
        self.provider = provider

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers.update(self.client.get_headers(self.provider))
        response = yield request
        if is_invalid_token(response.status_code, response.headers.get("WWW-Authenticate")):
            self.client.renew(self.provider)
            request.headers.update(self.client.get_headers(self.provider))
            yield request
