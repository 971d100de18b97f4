"""Fixtures: a throw-away home per test (configuration, store, caches) and the real ``qlam``
command, whose bundled providers the Python client loads too."""

from __future__ import annotations

import os
import pathlib
import subprocess
from typing import Optional

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[3]


def qlam_exe() -> str:
    exe = os.environ.get("QLAM_EXE")
    if exe:
        return exe
    built = ROOT / "target" / "debug" / "qlam"
    if built.exists():
        return str(built)
    pytest.fail("set QLAM_EXE to a built qlam (cargo build -p qlam), whose bundled providers the tests use")


class Home:
    def __init__(self, path: pathlib.Path, exe: str) -> None:
        self.path = path
        self.exe = exe
        self.config = path / "config" / "qlam" / "config.toml"
        self.env = {
            "HOME": str(path),
            "XDG_CONFIG_HOME": str(path / "config"),
            "XDG_DATA_HOME": str(path / "data"),
            "XDG_STATE_HOME": str(path / "state"),
            "XDG_CACHE_HOME": str(path / "cache"),
            "QLAM_EXE": exe,
        }

    def write_config(self, text: str) -> pathlib.Path:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(text)
        return self.config

    def qlam(self, *args: str, stdin: Optional[str] = None, check: bool = True) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QLAM_")}
        env.update(self.env)
        r = subprocess.run(
            [self.exe, *args], input=stdin, capture_output=True, text=True, env=env, timeout=60
        )
        if check and r.returncode != 0:
            raise AssertionError(f"qlam {' '.join(args)} failed ({r.returncode}): {r.stderr}")
        return r


@pytest.fixture
def home(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Home:
    h = Home(tmp_path, qlam_exe())
    for k in list(os.environ):
        if k.startswith("QLAM_"):
            monkeypatch.delenv(k)
    for k, v in h.env.items():
        monkeypatch.setenv(k, v)
    return h


# The configuration most of the Rust end-to-end tests use too.
DEMO_CONFIG = (ROOT / "tests" / "it" / "demo-config.toml").read_text()
