"""The built wheel carries the manifests: build it, install it into a fresh virtualenv, and
build a client from a directory outside the checkout."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = r"""
import json, sys, ai_lib_sync
from ai_lib_sync import AiClient
assert "site-packages" in ai_lib_sync.__file__, ai_lib_sync.__file__
client = AiClient("openai/gpt-4o", api_key="k")
print(json.dumps({"file": ai_lib_sync.__file__, "manifest": str(client.manifest.path),
                  "providers": ai_lib_sync.providers(), "echo": AiClient("mock/echo").chat().user("hi").execute().content}))
"""


def test_wheel_ships_manifests_and_works_outside_the_checkout(tmp_path):
    pytest.importorskip("setuptools")
    pytest.importorskip("wheel")
    dist = tmp_path / "dist"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert build.returncode == 0, build.stdout + build.stderr
    wheel = next(dist.glob("ai_lib_sync-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, system_site_packages=True, with_pip=True)
    python = env_dir / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = subprocess.run([str(python), "-c", CHECK], capture_output=True, text=True, timeout=120, cwd=elsewhere,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr
    import json

    result = json.loads(run.stdout)
    assert str(env_dir) in result["file"] and str(env_dir) in result["manifest"]
    assert result["manifest"].endswith("ai_lib_sync/manifests/openai.json")
    assert {"openai", "mock"} <= set(result["providers"])
    assert result["echo"] == "Echo: hi"
