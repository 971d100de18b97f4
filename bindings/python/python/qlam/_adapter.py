"""The edge between the native host and a provider written in Python.

The host calls a provider through an :class:`Adapter`: one method per host call, plain
values in and out (JSON text for documents, so the host parses and validates them like any
plugin's answer). Nothing a provider returns is trusted here either: a wrong type is an
error naming the method, and every exception becomes a :class:`Failure` with the host's error
kind. An exception that is not one of qlam's (a ``KeyError`` from a bug, ``SystemExit``) is
reported like a plugin's panic: its text may hold anything, so only the debug log sees it.
"""

from __future__ import annotations

import inspect
import json
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional, Tuple

from . import errors
from .base import (
    BaseAuthProvider,
    HTTPHeadersMixin,
    LoginLogoutMixin,
    RefreshCredentialsMixin,
    TokenMixin,
)
from .models import BasicCredential, CredentialBase, OAuthCredential, VendorCredential


class Failure(Exception):
    """A provider call that failed: the host's error ``kind`` (``not_authenticated``,
    ``configuration``, ``unsupported``, ``transient``, ``interaction``, ``other`` or
    ``panic``) and a message (for ``panic``: the debug log's, never shown)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(kind, message)
        self.kind = kind
        self.message = message


# qlam's own exceptions say what happened; the most specific class first.
_KINDS: List[Tuple[type, str]] = [
    (errors.NotAuthenticatedError, "not_authenticated"),
    (errors.UnsupportedOperationError, "unsupported"),
    (errors.InteractionError, "interaction"),
    (errors.ConfigurationError, "configuration"),
    (errors.ProviderTimeoutError, "transient"),
    (errors.QlamCoreError, "other"),
    (NotImplementedError, "unsupported"),
    # Network trouble that may pass: the host keeps every credential and tries again later.
    (ConnectionError, "transient"),
    (TimeoutError, "transient"),
]


def _failure(e: BaseException, call: str, *, building: bool = False) -> Failure:
    for cls, kind in _KINDS:
        if isinstance(e, cls):
            message = str(e) or f"{type(e).__name__} in `{call}`"
            return Failure(kind, message)
    if building and isinstance(e, (ValueError, TypeError)):
        # Settings that do not fit the provider: the user must edit the configuration.
        return Failure("configuration", f"{type(e).__name__}: {e}")
    return Failure("panic", f"{type(e).__name__} in `{call}`: {e}")


def _answer_error(call: str, why: str) -> Failure:
    return Failure("other", f"`{call}` returned {why}")


def _epoch(when: Any, call: str) -> Optional[float]:
    if when is None:
        return None
    if not isinstance(when, datetime):
        raise _answer_error(call, f"{type(when).__name__}, not a datetime or None")
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def build(
    factory: Any,
    context_name: str,
    provider_name: str,
    config_json: str,
    host_services: Any,
) -> "Adapter":
    """Builds a provider with ``factory`` (a provider class or a callable) from its
    settings, and gives it the host's services."""
    config = json.loads(config_json)
    kwargs: Dict[str, Any] = {
        "context_name": context_name,
        "provider_name": provider_name,
        "provider_config": config,
    }
    try:
        make = factory.build_from_settings if isinstance(factory, type) else factory
        if _accepts(make, "host_services"):
            kwargs["host_services"] = host_services
        provider = make(**kwargs)
    except BaseException as e:  # noqa: BLE001 - every failure becomes a typed error
        raise _failure(e, "build", building=True) from None
    if provider is None:
        raise Failure("other", "the factory returned None, not a provider")
    try:
        provider.host_services = host_services
    except Exception:  # noqa: BLE001 - a provider with __slots__ or a read-only attribute
        pass
    return Adapter(provider)


def extra_info(factory: Any, config_json: str) -> str:
    """The type's display facts for a provider's settings, as JSON text."""
    get = getattr(factory, "extra_info_from_config", None)
    if get is None:
        return "{}"
    try:
        info = get(json.loads(config_json))
    except BaseException as e:  # noqa: BLE001
        raise _failure(e, "extra_info") from None
    if not isinstance(info, dict):
        raise _answer_error("extra_info_from_config", f"{type(info).__name__}, not a dict")
    return json.dumps(info, default=str)


def _accepts(f: Any, keyword: str) -> bool:
    try:
        params = inspect.signature(f).parameters
    except (TypeError, ValueError):
        return False
    return keyword in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Adapter:
    """One built provider, as the host calls it."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        #: ``(headers, login, token, refresh)``: what it inherits.
        self.capabilities = (
            isinstance(provider, HTTPHeadersMixin),
            isinstance(provider, LoginLogoutMixin),
            isinstance(provider, TokenMixin),
            isinstance(provider, RefreshCredentialsMixin),
        )

    def _call(self, call: str, method: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return getattr(self.provider, method)(*args, **kwargs)
        except Failure:
            raise
        except BaseException as e:  # noqa: BLE001 - every failure becomes a typed error
            raise _failure(e, call) from None

    def _valid_until(self, call: str) -> Optional[float]:
        if not isinstance(self.provider, BaseAuthProvider) and not hasattr(
            self.provider, "answers_valid_until"
        ):
            return None
        return _epoch(self._call(call, "answers_valid_until"), "answers_valid_until")

    def description(self) -> str:
        try:
            d = self.provider.description
            d = d() if callable(d) else d
        except BaseException as e:  # noqa: BLE001
            raise _failure(e, "description") from None
        if not isinstance(d, str):
            raise _answer_error("description", f"{type(d).__name__}, not a str")
        return d

    def is_authenticated(self) -> bool:
        return bool(self._call("is_authenticated", "is_authenticated"))

    def auth_context(self) -> str:
        context = self._call("auth_context", "get_auth_context")
        if not isinstance(context, dict):
            raise _answer_error("get_auth_context", f"{type(context).__name__}, not a dict")
        return json.dumps(context, default=str)

    def credential(self) -> Optional[str]:
        c = self._call("credential", "get_credential")
        if c is None:
            return None
        if not isinstance(c, CredentialBase):
            raise _answer_error("get_credential", f"{type(c).__name__}, not a CredentialBase")
        return json.dumps(_native_credential(c))

    def headers(self) -> Tuple[Dict[str, str], Optional[float]]:
        h = self._call("headers", "get_headers")
        if not isinstance(h, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in h.items()
        ):
            raise _answer_error("get_headers", "something other than a dict of str to str")
        return h, self._valid_until("headers")

    def token(self) -> Tuple[str, Optional[float]]:
        t = self._call("token", "token")
        if not isinstance(t, str):
            raise _answer_error("token", f"{type(t).__name__}, not a str")
        return t, self._valid_until("token")

    def login(self, flow: Optional[str], no_browser: bool) -> None:
        options = {}
        if _accepts(self.provider.login, "flow"):
            options["flow"] = flow
        if _accepts(self.provider.login, "no_browser"):
            options["no_browser"] = no_browser
        self._call("login", "login", **options)

    def logout(self) -> List[str]:
        warnings = self._call("logout", "logout")
        # The auth library's logout returns nothing; a list of strings is taken as warnings.
        if isinstance(warnings, list) and all(isinstance(w, str) for w in warnings):
            return warnings
        return []

    def can_refresh(self) -> bool:
        return bool(self._call("can_refresh", "can_refresh_credentials"))

    def refresh(self, force: bool) -> bool:
        return bool(self._call("refresh", "refresh_credentials", force=force))


_STATUSES = {"authenticated", "not_authenticated", "expired"}


def _status(status: str) -> str:
    # The auth library's providers wrote statuses for people ("Not authenticated").
    s = str(status).strip().lower().replace(" ", "_").replace("-", "_")
    if s not in _STATUSES:
        raise _answer_error("get_credential", f"the status {status!r} (expected one of {sorted(_STATUSES)})")
    return s


def _native_credential(c: CredentialBase) -> Dict[str, Any]:
    """A credential model in the host's shape (``kind`` and its fields). A model of the
    provider's own is a vendor credential: its fields declared ``repr=False`` are its
    secrets (redacted when shown), the others its fields."""
    base = {"name": c.name, "status": _status(c.status)}
    if isinstance(c, OAuthCredential):
        data = c.model_dump(mode="json", exclude={"name", "status"})
        return {**base, "kind": "oauth", **data}
    if isinstance(c, BasicCredential):
        data = c.model_dump(mode="json", exclude={"name", "status"})
        return {**base, "kind": "basic", **data}
    if isinstance(c, VendorCredential):
        data = c.model_dump(mode="json", exclude={"name", "status"})
        return {**base, "kind": "vendor", **data}
    data = c.model_dump(mode="json", exclude={"name", "status"})
    hidden = {n for n, f in type(c).model_fields.items() if f.repr is False}
    return {
        **base,
        "kind": "vendor",
        "type": type(c).__name__,
        "fields": {k: v for k, v in data.items() if k not in hidden},
        "secrets": {k: str(v) for k, v in data.items() if k in hidden and v is not None},
    }
