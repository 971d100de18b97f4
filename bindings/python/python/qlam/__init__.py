"""qlam for Python: the auth library's API (``AuthClient``, credential models, exceptions) on
the native qlam host, sharing its configuration, credential store and refresh coordination
with the ``qlam`` command and every other program that uses it."""

from ._native import API_VERSION
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
from .models import BasicCredential, CredentialBase, OAuthCredential, VendorCredential

__all__ = [
    "API_VERSION",
    "AuthClient",
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
