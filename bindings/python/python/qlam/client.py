"""``AuthClient``: the Python auth library's client, on the native qlam host.

The semantics are the reference's (``login``/``logout``/``refresh_credentials`` for one
provider raise typed errors, for all return ``{name: ok}`` best effort; ``is_authenticated``
is ``False`` for an unknown provider; ``get_credential`` returns a model or ``None``), and the
state is qlam's: the same configuration, credential store, locks and cached answers as the
``qlam`` command, kubectl, git and every other program using qlam.
"""

from __future__ import annotations

import logging
import os
import shutil
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Union

from . import _native
from .interaction import Interaction

if TYPE_CHECKING:
    from .models import CredentialBase
from .registry import auth_registry

PathLike = Union[str, "os.PathLike[str]"]


def _qlam_executable() -> Optional[str]:
    """The ``qlam`` command whose bundled providers (beside it) this client also loads:
    ``$QLAM_EXE``, else ``qlam`` on ``PATH``."""
    exe = os.environ.get("QLAM_EXE") or shutil.which("qlam")
    if not exe:
        global _said_no_qlam
        if not _said_no_qlam:
            _said_no_qlam = True
            logging.getLogger("qlam").warning(
                "the qlam command was not found ($QLAM_EXE, PATH): the providers bundled with it "
                "(token, basic, oauth) are not available; install qlam or set QLAM_EXE"
            )
        return None
    return os.path.abspath(exe)


_said_no_qlam = False


def _config_from_ctx(ctx: Any) -> tuple[Optional[str], Optional[str]]:
    """``(config file, context)`` from an application context shaped like the reference's
    (``ctx.config`` with ``path``/``config_path`` and ``current_context``), or a path."""
    if ctx is None:
        return None, None
    if isinstance(ctx, (str, os.PathLike)):
        return os.fspath(ctx), None
    config = getattr(ctx, "config", ctx)
    path = getattr(config, "path", None) or getattr(config, "config_path", None)
    current = getattr(config, "current_context", None)
    context = getattr(current, "name", current)
    return (os.fspath(path) if path else None), (context if isinstance(context, str) else None)


class AuthClient:
    """Authentication operations on the providers of one configuration context.

    ``AuthClient()`` reads qlam's own configuration (``$QLAM_CONFIG``, else
    ``~/.config/qlam/config.toml``); ``config_path`` and ``context`` choose others, and
    ``ctx`` may be the reference's application context or a config file path. Prompts,
    device codes and browser logins use the terminal, or ``interaction`` (see
    :class:`qlam.Interaction`); ``interactive=False`` refuses every step that needs a person.

    The provider types are the plugin libraries' and those registered in
    :data:`qlam.auth_registry` when the client is made (its entry points included).
    """

    def __init__(
        self,
        ctx: Any = None,
        *,
        context: Optional[str] = None,
        config_path: Optional[PathLike] = None,
        plugin_dirs: Sequence[PathLike] = (),
        interactive: bool = True,
        no_browser: bool = False,
        interaction: Optional[Interaction] = None,
    ) -> None:
        ctx_path, ctx_context = _config_from_ctx(ctx)
        path = os.fspath(config_path) if config_path is not None else ctx_path
        self._native = _native.Client(
            config_path=path,
            context=context or ctx_context,
            plugin_dirs=[os.fspath(d) for d in plugin_dirs],
            interactive=interactive,
            no_browser=no_browser,
            qlam_executable=_qlam_executable(),
            interaction=interaction,
            factories=auth_registry._for_native(),
        )

    def __enter__(self) -> "AuthClient":
        return self

    def __exit__(self, exc_type: Any, exc_val: Any, exc_tb: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"AuthClient(providers={self._native.provider_names()!r})"

    def login(self, provider: Optional[str] = None) -> Dict[str, bool]:
        """Logs in to one provider (its failure raised) or to all (best effort)."""
        if provider is not None:
            return {provider: self._native.login(provider)}
        return self._native.login(None)

    def logout(self, provider: Optional[str] = None) -> Dict[str, bool]:
        """Logs out of one provider (its failure raised) or of all (best effort)."""
        if provider is not None:
            return {provider: self._native.logout(provider)}
        return self._native.logout(None)

    def refresh_credentials(
        self, provider: Optional[str] = None, *, force: bool = False
    ) -> Dict[str, bool]:
        """Refreshes one provider (its failure raised) or all (best effort); ``True`` where
        new credentials were obtained."""
        if provider is not None:
            return {provider: self._native.refresh_credentials(provider, force)}
        return self._native.refresh_credentials(None, force)

    def is_authenticated(self, provider: Optional[str] = None) -> bool:
        """Whether the provider (or any provider) has usable credentials."""
        return self._native.is_authenticated(provider)

    def get_credential(self, provider: str) -> Optional["CredentialBase"]:
        """The provider's credential model, or ``None`` when it holds nothing at all."""
        # The models (pydantic) are imported here, not with the package: defining the first
        # pydantic model is most of an `import qlam` otherwise (bench/README.md).
        from .models import credential_from_native

        return credential_from_native(self._native.get_credential(provider))

    def list_providers(self) -> List[Dict[str, Any]]:
        """The providers of the context: ``name``, ``type``, ``status``, ``description``
        and the provider's extra information."""
        return self._native.list_providers()

    def get_headers(self, provider: str) -> Dict[str, str]:
        """The HTTP headers that authenticate a request with ``provider``."""
        return self._native.headers(provider)

    def token(self, provider: str) -> str:
        """The provider's access token."""
        return self._native.token(provider)

    def auth_context(self, provider: str) -> Dict[str, Any]:
        """What the provider says about its authentication state (no secrets)."""
        return self._native.auth_context(provider)

    def renew(self, provider: str) -> bool:
        """Forgets cached answers and renews the provider's credentials where it can (after
        a server refused them); ``True`` when renewed."""
        return self._native.renew(provider)
