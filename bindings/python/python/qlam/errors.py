"""The exceptions of qlam, as the Python auth library has them.

``QlamCoreError`` is the base of every error qlam raises. ``ConfigurationError`` and
``AuthenticationError`` are the reference's; the others say more precisely what happened and
stay catchable as those (or as ``ValueError`` where the reference raised it: an unknown
provider, an operation a provider does not support). Every exception carries ``kind``, the
host's error kind as a string (``"config"``, ``"provider_not_authenticated"``…).
"""


class QlamCoreError(Exception):
    """Base class of qlam's errors."""

    kind = "other"


class ConfigurationError(QlamCoreError):
    """The configuration is wrong: a file, a context, a provider's settings."""

    kind = "config"


class UnknownProviderError(ConfigurationError, ValueError):
    """No provider of that name in the selected context."""

    kind = "usage"


class AuthenticationError(QlamCoreError):
    """A provider could not authenticate (its own error)."""

    kind = "provider_other"


class NotAuthenticatedError(AuthenticationError):
    """The provider has no usable credentials: log in first."""

    kind = "provider_not_authenticated"


class UnsupportedOperationError(AuthenticationError, ValueError):
    """The provider cannot do that (login on a provider without one, for example)."""

    kind = "provider_unsupported"


class InteractionError(AuthenticationError):
    """The user could not be asked (no terminal) or declined."""

    kind = "provider_interaction"


class PluginError(QlamCoreError):
    """A provider's plugin library could not be loaded or used."""

    kind = "plugin"


class StoreError(QlamCoreError):
    """The credential store could not be read or written."""

    kind = "store"


class ProviderTimeoutError(QlamCoreError, TimeoutError):
    """A provider did not answer within its deadline (``call_timeout_secs``)."""

    kind = "timeout"


class InvalidAnswerError(QlamCoreError):
    """A provider answered something qlam refuses to pass on (a header with a newline…)."""

    kind = "invalid_answer"


class ProviderCrashedError(QlamCoreError):
    """An isolated provider's process died."""

    kind = "crashed"


__all__ = [
    "QlamCoreError",
    "ConfigurationError",
    "UnknownProviderError",
    "AuthenticationError",
    "NotAuthenticatedError",
    "UnsupportedOperationError",
    "InteractionError",
    "PluginError",
    "StoreError",
    "ProviderTimeoutError",
    "InvalidAnswerError",
    "ProviderCrashedError",
]
