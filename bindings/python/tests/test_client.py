"""The Python auth API on the native host, against the real qlam and its bundled providers."""

from __future__ import annotations

import json
import threading

import pytest

import qlam
from qlam import (
    AuthClient,
    BasicCredential,
    ConfigurationError,
    NotAuthenticatedError,
    QlamCoreError,
    UnknownProviderError,
    VendorCredential,
)

from conftest import DEMO_CONFIG

CANARY = "canary-5f3a9c-secret"


def test_list_providers_has_the_reference_shape(home, monkeypatch):
    home.write_config(DEMO_CONFIG)
    monkeypatch.setenv("QLAM_TEST_API_KEY", CANARY)
    with AuthClient(interactive=False) as client:
        rows = client.list_providers()
    assert [r["name"] for r in rows] == ["basic-demo", "token-demo", "env-key"]
    assert [r["type"] for r in rows] == ["basic", "token", "token"]
    assert [r["status"] for r in rows] == ["available", "available", "authenticated"]
    assert rows[0]["description"] == "Username and password"
    # The provider's extra information is merged in, as the Python library does.
    assert rows[2]["source"].startswith("env"), rows[2]
    assert CANARY not in repr(rows)


def test_headers_and_token_from_a_native_plugin(home, monkeypatch):
    home.write_config(DEMO_CONFIG)
    monkeypatch.setenv("QLAM_TEST_API_KEY", CANARY)
    client = AuthClient(interactive=False)
    assert client.get_headers("env-key") == {"X-API-Key": CANARY}
    assert client.token("env-key") == CANARY
    assert client.is_authenticated("env-key") is True
    assert client.is_authenticated() is True
    assert CANARY not in repr(client)


def test_one_store_with_the_qlam_command(home):
    home.write_config(DEMO_CONFIG)
    # Logged in by the command, read by Python.
    home.qlam("auth", "login", "token-demo", stdin=CANARY + "\n")
    client = AuthClient(interactive=False)
    assert client.get_headers("token-demo") == {"Authorization": f"Bearer {CANARY}"}
    credential = client.get_credential("token-demo")
    assert isinstance(credential, VendorCredential)
    assert credential.status == "authenticated"
    assert CANARY not in repr(credential) and CANARY not in str(credential)
    # Logged out by Python, seen by the command.
    assert client.logout("token-demo") == {"token-demo": True}
    status = json.loads(home.qlam("--output", "json", "auth", "status").stdout)
    assert {p["name"]: p["status"] for p in status}["token-demo"] == "available"
    r = home.qlam("auth", "token", "token-demo", check=False)
    assert r.returncode != 0 and CANARY not in r.stdout


def test_basic_credential_model(home):
    home.write_config(DEMO_CONFIG)
    home.qlam("auth", "login", "basic-demo", stdin=f"ann\n{CANARY}\n")
    credential = AuthClient(interactive=False).get_credential("basic-demo")
    assert isinstance(credential, BasicCredential)
    assert credential.username == "ann"
    assert credential.status == "authenticated"
    assert credential.login_time  # an ISO timestamp
    dumped = credential.model_dump()
    assert dumped["name"] == "basic-demo" and dumped["username"] == "ann"
    assert CANARY not in credential.model_dump_json()  # the password is never in the model


def test_errors_are_typed_and_the_reference_semantics_hold(home):
    home.write_config(DEMO_CONFIG)
    client = AuthClient(interactive=False)
    # An unknown provider: a ConfigurationError for get_credential, a ValueError for login.
    with pytest.raises(UnknownProviderError) as e:
        client.get_credential("nope")
    assert isinstance(e.value, ConfigurationError) and isinstance(e.value, ValueError)
    assert e.value.kind == "usage"
    with pytest.raises(ValueError):
        client.login("nope")
    assert client.is_authenticated("nope") is False
    # Not logged in.
    with pytest.raises(NotAuthenticatedError) as e:
        client.get_headers("token-demo")
    assert isinstance(e.value, QlamCoreError)
    assert "token-demo" in str(e.value)
    # Every provider, best effort: no input without a terminal, so nobody logs in.
    assert client.login() == {"basic-demo": False, "token-demo": False}


def test_a_broken_configuration_names_the_file_and_line(home):
    config = home.write_config("[contexts.c]\n[[contexts.c.auth_providers]]\nname = 1\n")
    with pytest.raises(ConfigurationError) as e:
        AuthClient(interactive=False)
    assert str(config) in str(e.value)
    assert (str(e.value.path), e.value.line) == (str(config), 2)


def test_many_threads_share_one_client(home, monkeypatch):
    home.write_config(DEMO_CONFIG)
    monkeypatch.setenv("QLAM_TEST_API_KEY", CANARY)
    client = AuthClient(interactive=False)
    results = []

    def work():
        for _ in range(200):
            results.append(client.get_headers("env-key")["X-API-Key"])

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [CANARY] * 1600


def test_the_package_says_its_plugin_api():
    assert qlam.API_VERSION.startswith("0.")


def test_a_slow_native_call_does_not_hold_the_gil(home):
    # A token provider whose command takes a second (as a network call would).
    home.write_config(
        DEMO_CONFIG
        + '\n[contexts.slow]\n[[contexts.slow.auth_providers]]\nname = "slow"\nprovider = "token"\n'
        + 'command = ["sh", "-c", "sleep 1; echo slow-token"]\n'
    )
    client = AuthClient(context="slow", interactive=False)
    done = threading.Event()
    answer = []

    def call():
        answer.append(client.token("slow"))
        done.set()

    t = threading.Thread(target=call)
    t.start()
    spins = 0
    while not done.is_set():
        spins += 1  # Python bytecode: runs only while the caller has released the GIL
    t.join()
    assert answer == ["slow-token"]
    # Holding the GIL, the call would leave this loop a few hundred turns (one per switch
    # interval) in that second; released, it runs freely.
    assert spins > 100_000, spins


def test_the_reference_usage_example_with_an_application_context(home):
    """The auth library's module example, ported: an application context whose ``config``
    says which file and which context."""
    from types import SimpleNamespace

    from qlam import Interaction

    class Answer(Interaction):
        def prompt_secret(self, provider, prompt):
            return CANARY

    config = home.write_config(DEMO_CONFIG.replace('current_context = "demo"', 'current_context = "other"'))
    # Not the file's current context: the application context chooses.
    ctx = SimpleNamespace(config=SimpleNamespace(path=config, current_context=SimpleNamespace(name="demo")))
    with AuthClient(ctx, interaction=Answer()) as client:
        # Login to a specific provider
        assert client.login(provider="token-demo") == {"token-demo": True}
        # Check authentication status
        providers = client.list_providers()
        assert {p["name"]: p["status"] for p in providers}["token-demo"] == "authenticated"
        # Logout
        assert client.logout(provider="token-demo") == {"token-demo": True}
        assert client.is_authenticated("token-demo") is False
        # A provider without login: a ValueError, as the reference says.
        with pytest.raises(ValueError):
            client.login(provider="env-key")
