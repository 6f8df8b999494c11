"""`python -m spendgate.probe [PATH]`: exit 0 if the local gateway answers GET PATH with 200.

The container image's HEALTHCHECK (PATH defaults to /healthz). Standard library only: it runs every
few seconds, so it skips the CLI's start-up, and slim images have no curl. The port is
`SPENDGATE_PORT` (default 8787), the variable `spendgate serve --port` also reads.
"""

from __future__ import annotations

import os
import sys
import urllib.request


def probe(path: str = "/healthz", timeout_s: float = 3.0) -> str | None:
    """None when healthy, else what went wrong."""
    url = f"http://127.0.0.1:{os.environ.get('SPENDGATE_PORT', '8787')}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return None if response.status == 200 else f"{url}: HTTP {response.status}"
    except (OSError, ValueError) as exc:  # refused, timed out, HTTP 4xx/5xx (HTTPError is an OSError)
        return f"{url}: {exc}"


def main(argv: list[str]) -> int:
    problem = probe(argv[1] if len(argv) > 1 else "/healthz")
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
