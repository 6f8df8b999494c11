"""Real client CLIs under test run inside `unshare -n` (a network namespace with only its loopback)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def netns_cli(env: str, name: str, install: str) -> str:
    """The CLI's path, from `env` or PATH. Skipped when it (or `unshare -n`) is missing, unless CI
    set `env`: then missing is a failure."""
    required = bool(os.environ.get(env))
    path = os.environ.get(env) or shutil.which(name)
    if not path:
        pytest.skip(f"the {name} CLI test needs {env}=/path/to/{name} ({install}; CI installs it)")
    if not Path(path).exists():
        pytest.fail(f"{env}={path} does not exist")
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        message = f"unshare -n is not available here: {probe.stderr.decode().strip()}"
        if required:
            pytest.fail(message)
        pytest.skip(message)
    return path
