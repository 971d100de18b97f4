"""The OAuth provider from Python, against a real authorization server (oidc-provider over
TLS on loopback, started by tests/it/python.rs, described in $QLAM_TEST_OAUTH), and one store
with the `qlam` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any, Dict, List

import pytest

from qlam import AuthClient, Interaction, OAuthCredential

CANARY_SECRET = "qlam-service-secret"  # the test server's client secret for qlam-service


@pytest.fixture(scope="module")
def oauth() -> Dict[str, Any]:
    raw = os.environ.get("QLAM_TEST_OAUTH")
    if not raw:
        pytest.fail("QLAM_TEST_OAUTH is not set: run these tests through `cargo test` (tests/it/python.rs), which starts the OAuth servers")
    return json.loads(raw)


def sso_config(server: Dict[str, Any], extra: str = "") -> str:
    return f"""current_context = "t"
[contexts.t]
[[contexts.t.auth_providers]]
name = "sso"
provider = "oauth"
issuer = "{server['issuer']}"
client_id = "qlam-cli"
scopes = ["openid", "offline_access", "profile", "api"]
ca_file = "{server['ca_file']}"
{extra}
"""


def events(server: Dict[str, Any], event: str, grant_type: str = None) -> List[Dict[str, Any]]:
    out = []
    with open(server["log_file"]) as f:
        for line in f:
            try:
                v = json.loads(line)
            except ValueError:
                continue
            if v.get("event") == event and (grant_type is None or v.get("grant_type") == grant_type):
                out.append(v)
    return out


class ScriptedUser(Interaction):
    """A program's UI whose user approves device codes (the server's scripted user)."""

    def __init__(self, oauth: Dict[str, Any], server: Dict[str, Any]) -> None:
        self.oauth, self.server = oauth, server
        self.shown: List[tuple] = []

    def show_verification(self, provider, verification_uri, user_code, verification_uri_complete):
        self.shown.append((provider, verification_uri, user_code))
        r = subprocess.run(
            ["node", self.oauth["scripted_user"], "--ca", self.server["ca_file"], "device", verification_uri, user_code],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stderr

    def progress(self, provider, message, done):
        pass


def test_device_flow_one_store_with_the_command_and_logout_revokes(home, oauth):
    server = oauth["long"]
    home.write_config(sso_config(server))
    ui = ScriptedUser(oauth, server)
    client = AuthClient(interaction=ui)
    assert client.is_authenticated("sso") is False
    assert client.login("sso") == {"sso": True}
    assert [s[0] for s in ui.shown] == ["sso"] and ui.shown[0][1].startswith(server["issuer"])
    assert len(events(server, "grant.success", "urn:ietf:params:oauth:grant-type:device_code")) == 1

    credential = client.get_credential("sso")
    assert isinstance(credential, OAuthCredential)
    assert credential.status == "authenticated" and credential.allows_refresh
    assert credential.client_id == "qlam-cli" and credential.expires_at is not None
    token = credential.access_token
    assert token and token not in repr(credential)
    assert client.get_headers("sso") == {"Authorization": f"Bearer {token}"}
    context = client.auth_context("sso")
    assert "alice" in (context.get("username"), context.get("subject")), json.dumps(context)

    # Obtained through Python, served by the command without a new grant.
    grants = len(events(server, "grant.success"))
    assert home.qlam("auth", "token", "sso").stdout.strip() == token
    assert len(events(server, "grant.success")) == grants

    # And the other way round: a new login by the command, read by a new Python client.
    home.qlam("auth", "logout", "sso")
    browser = f"node {oauth['scripted_user']} --ca {server['ca_file']}"
    r = subprocess.run(
        [home.exe, "auth", "login", "sso", "--flow", "browser"],
        env={**os.environ, **home.env, "BROWSER": browser},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    fresh = AuthClient(interactive=False)
    new_token = fresh.token("sso")
    assert new_token != token
    assert home.qlam("auth", "token", "sso").stdout.strip() == new_token
    grants = len(events(server, "grant.success"))
    assert fresh.get_headers("sso") == {"Authorization": f"Bearer {new_token}"}
    assert len(events(server, "grant.success")) == grants

    # Logout from Python revokes at the server and forgets everywhere.
    revoked = len(events(server, "revocation.success"))
    assert fresh.logout("sso") == {"sso": True}
    assert len(events(server, "revocation.success")) > revoked
    assert fresh.is_authenticated("sso") is False
    assert home.qlam("auth", "token", "sso", check=False).returncode != 0


# Each process starts, imports what it needs, sleeps until the same moment, then asks.
PYTHON_GET = """
import sys, time
from qlam import AuthClient
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
print(AuthClient(interactive=False).get_headers("sso")["Authorization"].split(" ", 1)[1])
"""

QLAM_GET = """
import os, sys, time
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
os.execv(sys.argv[2], [sys.argv[2], "auth", "token", "sso"])
"""


def test_eight_python_and_eight_qlam_processes_at_expiry_make_one_refresh(home, oauth):
    server = oauth["short"]
    home.write_config(sso_config(server, "refresh_margin_secs = 0"))
    ui = ScriptedUser(oauth, server)
    client = AuthClient(interaction=ui)
    client.login("sso")
    before = client.token("sso")
    refreshes = len(events(server, "grant.success", "refresh_token"))
    # Wait for the access token to expire.
    expires = client.get_credential("sso").expires_at.timestamp()
    time.sleep(max(0.0, expires - time.time()) + 0.5)
    env = {**os.environ, **home.env}
    start = f"{time.time() + 3:.3f}"
    procs = [
        subprocess.Popen([sys.executable, "-c", PYTHON_GET, start], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ] + [
        subprocess.Popen([sys.executable, "-c", QLAM_GET, start, home.exe], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    answers = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        answers.append(out.strip())
    assert len(events(server, "grant.success", "refresh_token")) == refreshes + 1
    assert len(set(answers)) == 1 and answers[0] != before, answers
    # This process's client sees the refreshed token too.
    assert client.token("sso") == answers[0]


def test_a_service_identity_gets_its_token_on_first_use_from_python(home, oauth, monkeypatch):
    server = oauth["long"]
    home.write_config(
        f"""current_context = "t"
[contexts.t]
[[contexts.t.auth_providers]]
name = "svc"
provider = "oauth"
issuer = "{server['issuer']}"
client_id = "qlam-service"
client_secret_env = "QLAM_TEST_CLIENT_SECRET"
flow = "client_credentials"
scopes = ["api"]
ca_file = "{server['ca_file']}"
"""
    )
    monkeypatch.setenv("QLAM_TEST_CLIENT_SECRET", CANARY_SECRET)
    client = AuthClient(interactive=False)
    rows = client.list_providers()
    assert rows[0]["status"] == "available"
    token = client.token("svc")
    assert token
    assert client.is_authenticated("svc") is True
    # The secret is nowhere a program or a log would show it.
    assert CANARY_SECRET not in repr(client.get_credential("svc"))
    assert CANARY_SECRET not in json.dumps(client.list_providers())
    assert CANARY_SECRET not in json.dumps(client.auth_context("svc"))
