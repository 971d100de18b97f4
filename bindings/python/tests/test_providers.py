"""Providers written in Python, beside the native plugins, as provider types of the host."""

from __future__ import annotations

import json
import os
import sys
import textwrap
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional

import pytest

import qlam
from qlam import (
    AuthClient,
    AuthenticationError,
    BaseAuthProvider,
    CredentialBase,
    HTTPHeadersMixin,
    Interaction,
    InteractionError,
    InvalidAnswerError,
    LoginLogoutMixin,
    NotAuthenticatedError,
    ProviderTimeoutError,
    RefreshCredentialsMixin,
    TokenMixin,
    VendorCredential,
    auth_registry,
)

from conftest import DEMO_CONFIG

CANARY = "canary-7d41e2-secret"


def config_with(*providers: str, timeout: Optional[int] = None) -> str:
    """The demo configuration, with more providers in its `demo` context."""
    extra = "".join(
        f'\n[[contexts.demo.auth_providers]]\nname = "{p}"\nprovider = "{p}"\n' for p in providers
    )
    head, sep, tail = DEMO_CONFIG.partition("[contexts.other]")
    top = f"call_timeout_secs = {timeout}\n" if timeout else ""
    return top + head + extra + "\n" + sep + tail


@pytest.fixture
def registered():
    """Provider types registered for one test, removed after it."""
    names: List[str] = []

    def register(name, factory):
        auth_registry.register_factory(name, factory)
        names.append(name)

    yield register
    for n in names:
        auth_registry.unregister(n)


# --- The auth library's own example, ported (an import change, and the two methods the
# --- example leaves out: `description` and `get_credential` are abstract in the reference
# --- too, so its class as printed cannot be instantiated there either).


class MyTokenProvider(BaseAuthProvider, HTTPHeadersMixin, LoginLogoutMixin):
    name = "mytoken"  # used by registry

    def __init__(self, context_name: str, token: Optional[str] = None) -> None:
        self._context_name = context_name
        self._token = token

    @property
    def description(self) -> str:
        return "My token"

    def is_authenticated(self) -> bool:
        return bool(self._token)

    def get_auth_context(self) -> Dict:
        return {"context": self._context_name, "has_token": self.is_authenticated()}

    def get_credential(self) -> Optional[CredentialBase]:
        return None

    def get_headers(self) -> Dict[str, str]:
        return {"Authorization": f"Bearer {self._token}"} if self._token else {}

    def login(self) -> None:
        self._token = "obtained"

    @classmethod
    def build_from_settings(cls, *, context_name, provider_name, provider_config):
        return cls(context_name, provider_config.get("token"))


def test_the_reference_example_beside_native_plugins(home, registered, monkeypatch):
    registered(None, MyTokenProvider)  # the name comes from the class, as in the reference
    home.write_config(config_with("mytoken"))
    monkeypatch.setenv("QLAM_TEST_API_KEY", CANARY)
    with AuthClient(interactive=False) as client:
        rows = {r["name"]: r for r in client.list_providers()}
        assert rows["mytoken"]["type"] == "mytoken"
        assert rows["mytoken"]["status"] == "available"
        assert rows["mytoken"]["description"] == "My token"
        assert rows["mytoken"]["capabilities"] == ["headers", "login"]
        assert rows["env-key"]["status"] == "authenticated"  # a native plugin, same client
        assert client.is_authenticated("mytoken") is False
        assert client.login("mytoken") == {"mytoken": True}
        assert client.is_authenticated("mytoken") is True
        assert client.get_headers("mytoken") == {"Authorization": "Bearer obtained"}
        assert client.auth_context("mytoken") == {"context": "demo", "has_token": True}
        assert client.get_headers("env-key") == {"X-API-Key": CANARY}
        # No token capability: the host refuses without calling the provider.
        with pytest.raises(qlam.UnsupportedOperationError):
            client.token("mytoken")


# --- A provider that keeps its token in qlam's store and asks through the host.


class StoredTokenProvider(BaseAuthProvider, HTTPHeadersMixin, TokenMixin, LoginLogoutMixin):
    """A token kept in qlam's store"""

    calls: Dict[str, int] = {}

    def __init__(self, header: str) -> None:
        self.header = header

    @classmethod
    def build_from_settings(cls, *, context_name, provider_name, provider_config, host_services):
        assert host_services is not None  # given while building, for providers that need it
        return cls(provider_config.get("header", "Authorization"))

    @property
    def description(self) -> str:
        return "Stored token"

    def _token(self) -> Optional[str]:
        return self.host_services.load_secret("token")

    def is_authenticated(self) -> bool:
        return self._token() is not None

    def get_auth_context(self) -> Dict:
        return {"authenticated": self.is_authenticated()}

    def get_credential(self):
        return VendorCredential(
            name="stored",
            status="authenticated" if self.is_authenticated() else "Not authenticated",
            type="stored-token",
            secrets={"token": self._token()} if self._token() else {},
        )

    def get_headers(self) -> Dict[str, str]:
        StoredTokenProvider.calls["headers"] = StoredTokenProvider.calls.get("headers", 0) + 1
        token = self._token()
        if token is None:
            raise qlam.NotAuthenticatedError("no token stored; log in first")
        return {self.header: token}

    def token(self) -> str:
        return self.get_headers()[self.header]

    def answers_valid_until(self):
        return datetime.now(timezone.utc) + timedelta(hours=1)

    def login(self) -> None:
        self.host_services.save_secret("token", self.host_services.prompt_secret("Token"))

    def logout(self) -> None:
        self.host_services.delete_secret("token")


class Scripted(Interaction):
    """A program's own UI: answers prompts from a list and records what it was asked."""

    def __init__(self, answers: List[str]) -> None:
        self.answers = list(answers)
        self.asked: List[tuple] = []

    def prompt_secret(self, provider, prompt):
        self.asked.append(("secret", provider, prompt))
        if not self.answers:
            raise InteractionError("the user pressed Cancel")
        return self.answers.pop(0)

    def prompt_text(self, provider, prompt):
        self.asked.append(("text", provider, prompt))
        return self.answers.pop(0)


def test_a_python_provider_uses_the_store_the_interaction_and_the_answer_cache(home, registered):
    registered("stored", StoredTokenProvider)
    home.write_config(config_with("stored"))
    ui = Scripted([CANARY])
    client = AuthClient(interaction=ui)
    assert client.login("stored") == {"stored": True}
    assert ui.asked == [("secret", "stored", "Token")]
    # In qlam's store, as the host keeps it: a new client (another program) sees it.
    assert AuthClient(interactive=False).get_headers("stored") == {"Authorization": CANARY}
    files = [p for p in (home.path / "state" / "qlam").rglob("*") if p.is_file()]
    assert any(CANARY in p.read_text(errors="replace") for p in files), files
    # The answer is reused until `answers_valid_until`: the provider is asked once.
    StoredTokenProvider.calls.clear()
    for _ in range(50):
        assert client.get_headers("stored") == {"Authorization": CANARY}
    assert StoredTokenProvider.calls == {"headers": 1}
    assert client.token("stored") == CANARY
    # The credential model: the secret is there for the program, not in repr.
    credential = client.get_credential("stored")
    assert isinstance(credential, VendorCredential) and credential.secrets == {"token": CANARY}
    assert CANARY not in repr(credential)
    # The `qlam` command has no such provider type, but until `answers_valid_until` it serves
    # the answer the Python provider gave (as the contract says: for kubectl, git...)...
    assert home.qlam("auth", "token", "stored").stdout == CANARY + "\n"
    # ... and where it would need the provider, it says what is missing.
    r = home.qlam("auth", "login", "stored", check=False)
    assert r.returncode != 0 and "stored" in r.stderr and CANARY not in r.stdout + r.stderr
    # Logout drops the reused answer, here and for the command.
    assert client.logout("stored") == {"stored": True}
    with pytest.raises(NotAuthenticatedError):
        client.get_headers("stored")
    r = home.qlam("auth", "token", "stored", check=False)
    assert r.returncode != 0 and CANARY not in r.stdout + r.stderr
    # The user cancels: an InteractionError, nothing stored.
    with pytest.raises(InteractionError):
        client.login("stored")
    assert client.is_authenticated("stored") is False


def test_a_native_plugin_asks_through_the_programs_interaction_object(home):
    home.write_config(DEMO_CONFIG)
    ui = Scripted(["ann", CANARY])
    client = AuthClient(interaction=ui)
    assert client.login("basic-demo") == {"basic-demo": True}
    assert [a[0] for a in ui.asked] == ["text", "secret"]
    assert client.get_credential("basic-demo").username == "ann"
    # A provider that needs an answer the UI does not give: a typed error.
    with pytest.raises(InteractionError) as e:
        AuthClient(interaction=Interaction()).login("token-demo")
    assert "cannot ask" in str(e.value)


# --- A provider that misbehaves: every method raises, or answers wrongly.

METHODS = [
    "build",
    "is_authenticated",
    "get_auth_context",
    "get_credential",
    "get_headers",
    "token",
    "login",
    "logout",
    "refresh_credentials",
]


class Raising(BaseAuthProvider, HTTPHeadersMixin, TokenMixin, LoginLogoutMixin, RefreshCredentialsMixin):
    """Raises in the method its settings name"""

    def __init__(self, where: str, how: str) -> None:
        self.where, self.how = where, how

    @classmethod
    def build_from_settings(cls, *, context_name, provider_name, provider_config):
        p = cls(provider_config["where"], provider_config["how"])
        p._maybe_raise("build")
        return p

    def _maybe_raise(self, method: str):
        if self.where != method:
            return
        if self.how == "bug":
            raise KeyError(f"bug holding {CANARY}")
        if self.how == "exit":
            sys.exit(3)
        raise NotAuthenticatedError("the session is over; log in again")

    @property
    def description(self) -> str:
        return "Raising"

    def is_authenticated(self) -> bool:
        self._maybe_raise("is_authenticated")
        return True

    def get_auth_context(self):
        self._maybe_raise("get_auth_context")
        return {}

    def get_credential(self):
        self._maybe_raise("get_credential")
        return None

    def get_headers(self):
        self._maybe_raise("get_headers")
        return {"X-Ok": "yes"}

    def token(self):
        self._maybe_raise("token")
        return "tok"

    def login(self):
        self._maybe_raise("login")

    def logout(self):
        self._maybe_raise("logout")

    def can_refresh_credentials(self) -> bool:
        return True

    def refresh_credentials(self, *, force=False):
        self._maybe_raise("refresh_credentials")
        return True


def raising_config(where: str, how: str) -> str:
    return config_with() + textwrap.dedent(
        f"""
        [contexts.bad]
        [[contexts.bad.auth_providers]]
        name = "raising"
        provider = "raising"
        where = "{where}"
        how = "{how}"

        [[contexts.bad.auth_providers]]
        name = "env-key"
        provider = "token"
        env = "QLAM_TEST_API_KEY"
        header = "X-API-Key"
        scheme = ""
        """
    )


def call(client: AuthClient, method: str):
    return {
        "build": lambda: client.get_headers("raising"),
        "is_authenticated": lambda: client.is_authenticated("raising"),
        "get_auth_context": lambda: client.auth_context("raising"),
        "get_credential": lambda: client.get_credential("raising"),
        "get_headers": lambda: client.get_headers("raising"),
        "token": lambda: client.token("raising"),
        "login": lambda: client.login("raising"),
        "logout": lambda: client.logout("raising"),
        "refresh_credentials": lambda: client.refresh_credentials("raising", force=True),
    }[method]()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("how", ["bug", "exit", "typed"])
def test_a_provider_that_raises_gives_a_typed_error(home, registered, monkeypatch, method, how):
    registered("raising", Raising)
    monkeypatch.setenv("QLAM_TEST_API_KEY", CANARY)
    home.write_config(raising_config(method, how))
    client = AuthClient(context="bad", interactive=False)
    if method == "is_authenticated":
        # The reference's is_authenticated: a failure reads as False.
        assert call(client, method) is False
    else:
        with pytest.raises(qlam.QlamCoreError) as e:
            call(client, method)
        err = e.value
        assert CANARY not in str(err) and CANARY not in repr(err)
        if how == "typed" and method != "build":
            assert isinstance(err, NotAuthenticatedError), repr(err)
            assert "log in again" in str(err)
        elif how == "typed":
            assert isinstance(err, AuthenticationError) and "log in again" in str(err)
        else:
            # Not one of qlam's exceptions: reported like a plugin's panic, text hidden.
            assert isinstance(err, AuthenticationError), repr(err)
            assert err.kind == "provider_panic", err.kind
            assert "raising" in str(err)
    # The process and the other providers go on.
    assert client.get_headers("env-key") == {"X-API-Key": CANARY}
    rows = {r["name"]: r for r in client.list_providers()}
    assert rows["env-key"]["status"] == "authenticated"
    assert CANARY not in json.dumps(rows)


class Lying(BaseAuthProvider, HTTPHeadersMixin, TokenMixin):
    """Answers what it should not"""

    answer: object = None

    @classmethod
    def build_from_settings(cls, **_):
        return cls()

    @property
    def description(self):
        return "Lying"

    def is_authenticated(self):
        return True

    def get_auth_context(self):
        return {}

    def get_credential(self):
        return None

    def get_headers(self):
        return Lying.answer

    def token(self):
        return Lying.answer


@pytest.mark.parametrize(
    "answer,error",
    [
        ({"X-Ok": "fine\r\nX-Forged: yes"}, InvalidAnswerError),
        ({"Bad Name": "v"}, InvalidAnswerError),
        (["not", "a", "dict"], AuthenticationError),
        ({"X-Num": 1}, AuthenticationError),
    ],
)
def test_answers_are_checked_like_any_plugins(home, registered, answer, error):
    registered("lying", Lying)
    home.write_config(config_with("lying"))
    Lying.answer = answer
    client = AuthClient(interactive=False)
    with pytest.raises(error) as e:
        client.get_headers("lying")
    assert "Forged" not in str(e.value)
    Lying.answer = "tok\nen"
    with pytest.raises(InvalidAnswerError):
        client.token("lying")


class Hanging(Lying):
    def get_headers(self):
        time.sleep(30)
        return {}


def test_a_hanging_python_provider_misses_its_deadline(home, registered):
    registered("hanging", Hanging)
    home.write_config(config_with("hanging", timeout=1))
    client = AuthClient(interactive=False)
    started = time.monotonic()
    with pytest.raises(ProviderTimeoutError):
        client.get_headers("hanging")
    assert time.monotonic() - started < 10


# --- One refresh for many threads.


class Expiring(BaseAuthProvider, HTTPHeadersMixin, RefreshCredentialsMixin):
    """Tokens that expire; a refresh takes a while, as over a network"""

    refreshes = 0
    lock = threading.Lock()

    @classmethod
    def build_from_settings(cls, **_):
        return cls()

    @property
    def description(self):
        return "Expiring"

    def _state(self):
        raw = self.host_services.load_secret("state")
        return json.loads(raw) if raw else {"token": "t0", "expires": 0}

    def is_authenticated(self):
        return self._state()["expires"] > time.time()

    def get_auth_context(self):
        return {}

    def get_credential(self):
        return None

    def get_headers(self):
        return {"Authorization": "Bearer " + self._state()["token"]}

    def answers_valid_until(self):
        return datetime.fromtimestamp(self._state()["expires"], timezone.utc)

    def can_refresh_credentials(self):
        return True

    def refresh_credentials(self, *, force=False):
        state = self._state()
        if not force and state["expires"] > time.time() + 60:
            return False  # someone else refreshed while we waited for the lock
        time.sleep(0.2)
        with Expiring.lock:
            Expiring.refreshes += 1
            n = Expiring.refreshes
        self.host_services.save_secret(
            "state", json.dumps({"token": f"t{n}", "expires": time.time() + 3600})
        )
        return True


def test_many_threads_at_expiry_make_one_refresh(home, registered):
    registered("expiring", Expiring)
    home.write_config(config_with("expiring"))
    Expiring.refreshes = 0
    client = AuthClient(interactive=False)
    barrier = threading.Barrier(8)
    seen: List[str] = []

    def work():
        barrier.wait()
        seen.append(client.get_headers("expiring")["Authorization"])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Expiring.refreshes == 1
    assert seen == ["Bearer t1"] * 8


# --- Discovery through entry points.


def test_entry_points_register_provider_types_and_a_broken_one_is_left_out(
    home, tmp_path, monkeypatch, caplog
):
    site = tmp_path / "site"
    (site / "acme_qlam").mkdir(parents=True)
    (site / "acme_qlam" / "__init__.py").write_text(
        textwrap.dedent(
            """
            from qlam import BaseAuthProvider, HTTPHeadersMixin

            class Acme(BaseAuthProvider, HTTPHeadersMixin):
                '''Acme single sign-on'''
                @classmethod
                def build_from_settings(cls, **_):
                    return cls()
                description = "Acme SSO"
                def is_authenticated(self): return True
                def get_auth_context(self): return {}
                def get_credential(self): return None
                def get_headers(self): return {"X-Acme": "1"}
            """
        )
    )
    dist = site / "acme_qlam-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-qlam\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[qlam.providers]\nacme = acme_qlam:Acme\nbroken = acme_qlam:DoesNotExist\n"
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(auth_registry, "_discovered", False)
    monkeypatch.setattr(auth_registry, "_factories", dict(auth_registry._factories))
    home.write_config(config_with("acme"))
    with caplog.at_level("WARNING", logger="qlam"):
        client = AuthClient(interactive=False)
    assert client.get_headers("acme") == {"X-Acme": "1"}
    assert auth_registry.get_capabilities("acme") == {
        "description": "Acme single sign-on",
        "headers": True,
        "login": False,
        "token": False,
        "refresh": False,
    }
    assert any("'broken'" in r.getMessage() for r in caplog.records), caplog.text


# --- fork()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is Unix-only")
def test_a_client_used_before_fork_works_in_the_child(home, registered, monkeypatch):
    registered("stored", StoredTokenProvider)
    # A long deadline: a child that handed its call to a worker thread of the parent's
    # (which does not exist in the child) would wait all of it.
    home.write_config(config_with("stored", timeout=30))
    monkeypatch.setenv("QLAM_TEST_API_KEY", CANARY)
    client = AuthClient(interaction=Scripted([CANARY]))
    client.login("stored")
    assert client.is_authenticated("stored")  # worker threads exist now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 1
        try:
            os.close(read)
            started = time.monotonic()
            ok = (
                client.is_authenticated("stored")
                and client.token("stored") == CANARY
                and client.get_headers("env-key") == {"X-API-Key": CANARY}
            )
            os.write(write, f"{ok} {time.monotonic() - started:.2f}".encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    said = os.read(read, 100).decode()
    os.close(read)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, (status, said)
    ok, took = said.split()
    assert ok == "True", said
    assert float(took) < 10, f"the child's calls took {took} s"
    # The parent's client goes on.
    assert client.token("stored") == CANARY
