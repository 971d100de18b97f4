"""When a server's 401 means "renew the token and try again" (RFC 6750 §3.1)."""

from __future__ import annotations

import re
from typing import Optional

_INVALID_TOKEN = re.compile(r'(?i)\berror\s*=\s*"?invalid_token"?')


def is_invalid_token(status: int, www_authenticate: Optional[str]) -> bool:
    """A 401 whose ``WWW-Authenticate`` says ``error="invalid_token"``: the credential was
    refused (expired early, revoked), so one renewal and one retry may help. Any other 401 is
    the server's answer and is returned as it is."""
    return status == 401 and bool(www_authenticate) and bool(_INVALID_TOKEN.search(www_authenticate))
