#!/usr/bin/env bash
# Install LiteLLM's proxy into bench/.litellm-venv (git-ignored), for `bench/run.py --litellm`.
#
# LiteLLM is never a dependency of Spendgate: it lives in its own virtual environment.
# The `litellm[proxy]` extra pins packages the registry may not carry (litellm-proxy,
# litellm-enterprise, ...), so this installs the pinned `litellm` plus exactly what
# `litellm --config ...` imports at start-up, then checks that the proxy imports.
set -euo pipefail

LITELLM_VERSION="${LITELLM_VERSION:-1.110.2}"
if [[ "$LITELLM_VERSION" == "1.107.0" ]]; then
  echo "refusing litellm 1.107.0: that release was compromised" >&2
  exit 2
fi

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.litellm-venv"
python="${PYTHON:-python3}"

if [[ ! -x "$venv/bin/python" ]]; then
  "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --disable-pip-version-check)

# The proxy server's own start-up imports (found by importing litellm.proxy.proxy_server
# and litellm.proxy.proxy_cli in a bare install and adding what was missing).
"${pip[@]}" install "litellm==$LITELLM_VERSION" \
  fastapi uvicorn uvloop httptools orjson backoff pyyaml rq apscheduler cryptography \
  python-multipart email-validator fastapi-sso PyJWT websockets semver expression mcp soundfile

LITELLM_LOCAL_MODEL_COST_MAP=True "$venv/bin/python" -c \
  "import litellm.proxy.proxy_cli, litellm.proxy.proxy_server; import importlib.metadata as m; print('litellm', m.version('litellm'), 'proxy imports OK')"
