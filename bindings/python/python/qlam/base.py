"""Writing a provider in Python: the auth library's base class and capability mixins.

A class written against the Python auth library ports with an import change::

    from qlam.base import BaseAuthProvider, HTTPHeadersMixin, LoginLogoutMixin

Registered with ``qlam.auth_registry.register_factory(name, factory)`` (or found through the
``qlam.providers`` entry point group), it is a provider type of the native host like any
plugin library: configured in a context's ``auth_providers`` with ``provider = "<name>"``, it
gets the host's credential store, its locks (one refresh at a time across threads and
processes), answer caching and deadlines.

What a provider can do is what it inherits, as in the auth library: the mixins are the
contract, not the presence of a method.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import TYPE_CHECKING, Any, Dict, Optional

if TYPE_CHECKING:
    from ._native import HostServices
    from .models import CredentialBase

JsonDict = Dict[str, Any]


class BaseAuthProvider(ABC):
    """What every provider has: a description, whether it holds usable credentials, its
    authentication context and its credential model.

    ``host_services`` is set by qlam when the provider is built: the credential store
    (``load``/``save``/``delete``, kept per context and provider in qlam's store),
    interaction with the user (``prompt_text``, ``prompt_secret``, ``show_verification``,
    ``open_url``, ``progress``), logging and ``resolve_path``. A ``build_from_settings`` that
    takes a ``host_services`` keyword gets it there too, to use while it builds.
    """

    #: The provider type name the registry uses when none is given to ``register_factory``.
    name: str = ""

    #: Set by qlam right after the provider is built.
    host_services: Optional["HostServices"] = None

    @property
    @abstractmethod
    def description(self) -> str:
        """A human-readable description, for help text and user interfaces."""

    @classmethod
    def build_from_settings(
        cls, *, context_name: str, provider_name: Optional[str], provider_config: Any
    ) -> "BaseAuthProvider":
        """Builds a provider from its settings: ``provider_config`` is the provider's table
        of the configuration file as a dict (every key but ``name`` and ``provider``)."""
        raise NotImplementedError(f"Provider {cls.__name__} must implement build_from_settings")

    @classmethod
    def extra_info_from_config(cls, provider_config: Any) -> JsonDict:
        """Display-only facts from the configuration (never secrets), merged into
        ``list_providers()``."""
        return {}

    @abstractmethod
    def is_authenticated(self) -> bool:
        """Whether there are usable credentials (cheap: no network)."""

    @abstractmethod
    def get_auth_context(self) -> JsonDict:
        """The authentication state and metadata, for clients (no secrets)."""

    @abstractmethod
    def get_credential(self) -> Optional["CredentialBase"]:
        """The credential model, possibly with a non-authenticated status to convey
        metadata; ``None`` only when there is no data at all."""

    def answers_valid_until(self) -> Optional[datetime]:
        """How long qlam may reuse this provider's last ``get_headers()``/``token()`` answer
        instead of asking again: a time (timezone-aware; naive means UTC), or ``None`` to be
        asked every time (the default). Called right after each of those answers.

        Until that time the answer is also written to qlam's private store, so other
        processes (``qlam auth token``, git, kubectl) are served from it without this
        provider; a login, logout or refresh drops it."""
        return None


class HTTPHeadersMixin:
    """A provider that makes HTTP headers for requests."""

    def get_headers(self) -> Dict[str, str]:
        """The headers that authenticate a request."""
        raise NotImplementedError


class LoginLogoutMixin:
    """A provider with login and logout; both do nothing unless overridden."""

    def login(self) -> None:
        """Logs in (asking the user through ``host_services`` where needed)."""

    def logout(self) -> None:
        """Forgets local credentials (and revokes them where the server supports it)."""


class RefreshCredentialsMixin(ABC):
    """A provider that can refresh its credentials without the user.

    qlam calls ``refresh_credentials`` under its refresh lock: one refresh at a time for a
    provider, across threads and processes, and the others then see the new credentials."""

    @abstractmethod
    def can_refresh_credentials(self) -> bool:
        """Whether the credentials can be refreshed without the user, right now."""

    @abstractmethod
    def refresh_credentials(self, *, force: bool = False) -> bool:
        """Refreshes (always when ``force``, else only when needed); ``True`` when new
        credentials were obtained."""


class TokenMixin:
    """A provider that gives an access token."""

    def token(self) -> str:
        """The access token to put into requests."""
        raise NotImplementedError


def supports_refresh_credentials(provider: object) -> bool:
    """Whether ``provider`` can refresh without the user: it inherits
    :class:`RefreshCredentialsMixin` (a contract, not a look for methods)."""
    return isinstance(provider, RefreshCredentialsMixin)


__all__ = [
    "BaseAuthProvider",
    "HTTPHeadersMixin",
    "JsonDict",
    "LoginLogoutMixin",
    "RefreshCredentialsMixin",
    "TokenMixin",
    "supports_refresh_credentials",
]
