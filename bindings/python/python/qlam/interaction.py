"""Talking to the user from a program with its own UI.

By default ``AuthClient`` asks at the terminal, as the ``qlam`` command does (prompts without
echo for secrets, device codes on stderr, the browser for browser logins). A GUI, a notebook
or a web application passes ``AuthClient(interaction=...)`` an object with the methods of
:class:`Interaction` instead; subclass it and override what the program can do. Each method
gets the provider's name first. Raising an exception (say, the user pressed "Cancel") fails
that provider's step with an ``InteractionError``.

The methods are called on qlam's worker threads, while the thread that called
``AuthClient`` waits; a GUI that must be driven from its own thread hands the request over
and waits for the answer.
"""

from __future__ import annotations

from typing import Optional

from .errors import InteractionError


class Interaction:
    """The requests a provider may make of the user."""

    def show_verification(
        self,
        provider: str,
        verification_uri: str,
        user_code: str,
        verification_uri_complete: Optional[str],
    ) -> None:
        """Shows a device-flow code: the user goes to ``verification_uri`` and types
        ``user_code`` (or opens ``verification_uri_complete``, which carries it)."""
        raise InteractionError(f"{type(self).__name__} cannot show a device code")

    def open_url(self, provider: str, url: str) -> bool:
        """Opens ``url`` in a browser (a browser login); ``False`` when it could not."""
        return False

    def prompt_text(self, provider: str, prompt: str) -> str:
        """Asks for a line of text (a user name)."""
        raise InteractionError(f"{type(self).__name__} cannot ask for {prompt!r}")

    def prompt_secret(self, provider: str, prompt: str) -> str:
        """Asks for a secret (a password, a token); never show or log the answer."""
        raise InteractionError(f"{type(self).__name__} cannot ask for {prompt!r}")

    def progress(self, provider: str, message: str, done: bool) -> None:
        """Reports a long step (``done`` ends it): waiting for the browser, for example."""


__all__ = ["Interaction"]
