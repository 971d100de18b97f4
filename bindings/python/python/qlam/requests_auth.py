"""``requests`` authentication with a qlam provider::

    import requests
    from qlam import AuthClient
    from qlam.requests_auth import QlamAuth

    session = requests.Session()
    session.auth = QlamAuth(AuthClient(), "corp-sso")

Each request gets the provider's headers. A ``401`` with ``error="invalid_token"`` renews the
credential once and sends the request once more, as qlam's reqwest middleware does.
"""

from __future__ import annotations

import requests

from ._retry import is_invalid_token
from .client import AuthClient


class QlamAuth(requests.auth.AuthBase):
    """Adds ``provider``'s headers; renews and retries once on ``invalid_token``."""

    def __init__(self, client: AuthClient, provider: str) -> None:
        self.client = client
        self.provider = provider

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers.update(self.client.get_headers(self.provider))
        request.register_hook("response", self._renew_and_retry_once)
        return request

    def _renew_and_retry_once(self, response: requests.Response, **kwargs) -> requests.Response:
        if getattr(response.request, "_qlam_retried", False) or not is_invalid_token(
            response.status_code, response.headers.get("WWW-Authenticate")
        ):
            return response
        self.client.renew(self.provider)
        # Release the connection before sending again (as requests' digest auth does).
        response.content
        response.close()
        retry = response.request.copy()
        retry.headers.update(self.client.get_headers(self.provider))
        retry._qlam_retried = True
        again = response.connection.send(retry, **kwargs)
        again.history.append(response)
        again.request = retry
        return again
