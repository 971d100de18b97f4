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
