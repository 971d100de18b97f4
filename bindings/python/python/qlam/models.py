"""Credential models, as the Python auth library has them (pydantic).

Secrets (``access_token``, ``refresh_token``) are fields like the others, so ``model_dump()``
and ``model_dump_json()`` give them to the program that asked; ``repr()`` and ``str()`` never
show them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Dict, Optional

from pydantic import BaseModel, ConfigDict, Field


class CredentialBase(BaseModel):
    """What every credential has: the provider that holds it and its state
    (``authenticated``, ``not_authenticated`` or ``expired``)."""

    model_config = ConfigDict(extra="allow")

    name: str
    status: str


class BasicCredential(CredentialBase):
    """A username/password credential (the password is never part of it)."""

    username: str
    login_time: Optional[str] = None
    auth_source: Optional[str] = None


class OAuthCredential(CredentialBase):
    """An OAuth 2.0 credential."""

    client_id: str
    access_token: Optional[str] = Field(default=None, repr=False)
    refresh_token: Optional[str] = Field(default=None, repr=False)
    expires_at: Optional[datetime] = None
    allows_refresh: bool = False


class VendorCredential(CredentialBase):
    """A credential of a provider's own kind (``type``): what it reports in ``fields``, and
    its secret values in ``secrets``."""

    type: str
    fields: Dict[str, Any] = Field(default_factory=dict)
    secrets: Dict[str, str] = Field(default_factory=dict, repr=False)


def credential_from_native(data: Optional[Dict[str, Any]]) -> Optional[CredentialBase]:
    """The model for a credential as the native host reports it (a dict with ``kind``)."""
    if data is None:
        return None
    data = dict(data)
    kind = data.pop("kind", None)
    if kind == "basic":
        return BasicCredential(**data)
    if kind == "oauth":
        return OAuthCredential(**data)
    return VendorCredential(**data)


__all__ = [
    "CredentialBase",
    "BasicCredential",
    "OAuthCredential",
    "VendorCredential",
]
