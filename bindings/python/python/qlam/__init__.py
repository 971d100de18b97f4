"""qlam for Python: the auth library's API (``AuthClient``, credential models, exceptions) on
the native qlam host, sharing its configuration, credential store and refresh coordination
with the ``qlam`` command and every other program that uses it."""

import os as _os

from ._native import API_VERSION, HostServices, after_fork_in_child as _after_fork_in_child
from .base import (
    BaseAuthProvider,
    HTTPHeadersMixin,
    LoginLogoutMixin,
    RefreshCredentialsMixin,
    TokenMixin,
    supports_refresh_credentials,
)
from .client import AuthClient
from .errors import (
    AuthenticationError,
    ConfigurationError,
    InteractionError,
    InvalidAnswerError,
    NotAuthenticatedError,
    PluginError,
    ProviderCrashedError,
    ProviderTimeoutError,
    QlamCoreError,
    StoreError,
    UnknownProviderError,
    UnsupportedOperationError,
)
from .interaction import Interaction
from .registry import AuthRegistry, auth_registry

_MODELS = ("BasicCredential", "CredentialBase", "OAuthCredential", "VendorCredential")


def __getattr__(name: str):
    # The credential models are pydantic models, whose first definition costs about 100 ms:
    # imported when first asked for (PEP 562), not by `import qlam`.
    if name in _MODELS:
        from . import models

        return getattr(models, name)
    raise AttributeError(f"module 'qlam' has no attribute {name!r}")


# A client used before os.fork() builds a new host in the child at its first call (the
# parent's threads, locks and isolated children are not the child's).
if hasattr(_os, "register_at_fork"):
    _os.register_at_fork(after_in_child=_after_fork_in_child)

__all__ = [
    "API_VERSION",
    "AuthClient",
    "AuthRegistry",
    "BaseAuthProvider",
    "HTTPHeadersMixin",
    "HostServices",
    "Interaction",
    "LoginLogoutMixin",
    "RefreshCredentialsMixin",
    "TokenMixin",
    "auth_registry",
    "supports_refresh_credentials",
    "AuthenticationError",
    "BasicCredential",
    "ConfigurationError",
    "CredentialBase",
    "InteractionError",
    "InvalidAnswerError",
    "NotAuthenticatedError",
    "OAuthCredential",
    "PluginError",
    "ProviderCrashedError",
    "ProviderTimeoutError",
    "QlamCoreError",
    "StoreError",
    "UnknownProviderError",
    "UnsupportedOperationError",
    "VendorCredential",
]
