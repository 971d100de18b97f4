"""The registry of provider types written in Python: ``auth_registry``.

``auth_registry.register_factory(name, factory)`` adds a provider type, as in the auth library;
so does an installed distribution that declares an entry point in the ``qlam.providers``
group (``name = "module:ProviderClass"``), found when the first ``AuthClient`` is made. A
factory is a :class:`~qlam.base.BaseAuthProvider` subclass (built with its
``build_from_settings``) or any callable taking the same keywords and returning a provider.

Each ``AuthClient`` takes the types registered when it is made; they sit beside the native
plugin libraries, and a Python type wins over a library's type of the same name.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from .base import (
    HTTPHeadersMixin,
    LoginLogoutMixin,
    RefreshCredentialsMixin,
    TokenMixin,
)

ENTRY_POINT_GROUP = "qlam.providers"

Factory = Union[type, Callable[..., Any]]

_log = logging.getLogger("qlam")


def _capabilities_of(cls: Any) -> Dict[str, bool]:
    """What providers made by ``cls`` can do, as far as the class tells (a plain callable
    does not: its providers are asked when built)."""
    if not isinstance(cls, type):
        return {}
    return {
        "headers": issubclass(cls, HTTPHeadersMixin),
        "login": issubclass(cls, LoginLogoutMixin),
        "token": issubclass(cls, TokenMixin),
        "refresh": issubclass(cls, RefreshCredentialsMixin),
    }


def _description_of(name: str, factory: Factory) -> str:
    """A provider type's description before any provider exists: the first line of the
    class's docstring, else ``"<name> authentication"`` (as the auth library says)."""
    # A class's docstring is its own (not inherited), so a subclass without one has none.
    doc = factory.__doc__ if isinstance(factory, type) else None
    if doc and doc.strip():
        return doc.strip().splitlines()[0].strip()
    return f"{name} authentication"


class AuthRegistry:
    """Provider types written in Python, by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._factories: Dict[str, Factory] = {}
        self._discovered = False

    def register_factory(self, name: Optional[str], factory: Factory) -> None:
        """Adds (or replaces) the provider type ``name``. ``name`` may be ``None`` when the
        factory is a class with a ``name`` attribute."""
        name = name or getattr(factory, "name", None)
        if not name or not isinstance(name, str):
            raise ValueError("a provider type needs a name: register_factory(name, factory)")
        if not callable(factory):
            raise TypeError(f"the factory of provider type {name!r} is not callable: {factory!r}")
        with self._lock:
            self._factories[name] = factory

    def unregister(self, name: str) -> None:
        """Removes the provider type ``name`` (for the ``AuthClient``s made after)."""
        with self._lock:
            self._factories.pop(name, None)

    def get_capabilities(self, provider_type: str) -> Dict[str, Any]:
        """``description`` and the capability flags of a Python provider type; ``{}`` for a
        type this registry does not have."""
        factory = self.factories().get(provider_type)
        if factory is None:
            return {}
        return {"description": _description_of(provider_type, factory), **_capabilities_of(factory)}

    def factories(self) -> Dict[str, Factory]:
        """The registered types (entry points included), by name."""
        self.discover()
        with self._lock:
            return dict(self._factories)

    def discover(self) -> None:
        """Loads the ``qlam.providers`` entry points once. One that fails to import is
        logged and left out; the others are registered (explicit registrations win)."""
        with self._lock:
            if self._discovered:
                return
            self._discovered = True
        for ep_name, load in _entry_points():
            try:
                factory = load()
            except Exception as e:  # noqa: BLE001 - any failure of a third party's import
                _log.warning(
                    "provider type %r (entry point in group %s) could not be loaded: %s: %s",
                    ep_name,
                    ENTRY_POINT_GROUP,
                    type(e).__name__,
                    e,
                )
                continue
            with self._lock:
                self._factories.setdefault(ep_name, factory)

    def _for_native(self) -> List[Tuple[str, Factory, str, Dict[str, bool]]]:
        """``(name, factory, description, capabilities)`` for each type, for the host."""
        return [
            (name, factory, _description_of(name, factory), _capabilities_of(factory))
            for name, factory in sorted(self.factories().items())
        ]


def _entry_points() -> List[Tuple[str, Callable[[], Any]]]:
    from importlib import metadata

    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)  # Python 3.10+
    except TypeError:  # Python 3.9: a dict of groups
        eps = metadata.entry_points().get(ENTRY_POINT_GROUP, [])  # type: ignore[attr-defined]
    return [(ep.name, ep.load) for ep in eps]


#: The process's registry, as in the auth library.
auth_registry = AuthRegistry()

__all__ = ["AuthRegistry", "ENTRY_POINT_GROUP", "auth_registry"]
