"""Which of Spendgate's files one call runs through, and how often control changes module.

    python bench/call_path.py [--show]

Starts the fake provider and a gateway (temporary SQLite, a key with a rate limit and a team
budget, so every step of the path runs) on loopback, sends one warm-up call and then one
measured call per case (JSON, streamed), and traces the server thread with `sys.setprofile`
while the measured call is served. Only Python functions in `spendgate/` count (not the fake
provider, not libraries). For each case it prints:

- files: the distinct `spendgate/` files with a function called while serving the call;
- moves: calls from a function in one file to a function in another (returns not counted);
- re-entries: moves into a file that already has a frame lower on the stack (A -> B -> A:
  control going back to a module that handed it on);
- the hand-offs between the hot-path modules (proxy, call, forward, admission, settlement,
  relay...), collapsed: the order in which they have control of the call.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from spendgate.admin.budget_service import create_budget, set_key_limits  # noqa: E402
from spendgate.admin.service import create_key  # noqa: E402
from spendgate.app import create_app  # noqa: E402
from spendgate.config import Settings  # noqa: E402
from spendgate.fake_upstream import FakeUpstream  # noqa: E402
from spendgate.servethread import ServerThread  # noqa: E402

PACKAGE = str(ROOT / "spendgate") + "/"
EXCLUDED = (PACKAGE + "fake_upstream/",)
# The files that carry one call's control flow, before and after the hot-path refactor.
HOT = {"proxy.py", "call.py", "forward.py", "admission.py", "settlement.py", "relay.py", "meter.py"}


class Tracer:
    def __init__(self) -> None:
        self.on = False
        self.thread_name = "spendgate-server"
        self.files: Counter[str] = Counter()
        self.moves = 0
        self.reentries = 0
        self.handoffs: list[str] = []

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.on or event != "call" or threading.current_thread().name != self.thread_name:
            return
        callee = _ours(frame.f_code.co_filename)
        if callee is None:
            return
        self.files[callee] += 1
        if Path(callee).name in HOT and (not self.handoffs or self.handoffs[-1] != callee):
            self.handoffs.append(callee)
        caller = self._nearest_ours(frame.f_back)
        if caller is None or caller[0] == callee:
            return
        self.moves += 1
        stack = caller[1].f_back
        while stack is not None:
            if _ours(stack.f_code.co_filename) == callee:
                self.reentries += 1
                break
            stack = stack.f_back

    @staticmethod
    def _nearest_ours(frame: FrameType | None) -> tuple[str, FrameType] | None:
        while frame is not None:
            name = _ours(frame.f_code.co_filename)
            if name is not None:
                return name, frame
            frame = frame.f_back
        return None


def _ours(filename: str) -> str | None:
    if not filename.startswith(PACKAGE) or filename.startswith(EXCLUDED):
        return None
    return filename[len(PACKAGE) - len("spendgate/") :]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true", help="List the files and their call counts.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, FakeUpstream() as fake:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/spendgate.db",
            anthropic_base_url=fake.url,
            anthropic_api_key="sk-ant-provider",
            openai_base_url=fake.openai_url,
            openai_api_key="sk-openai-provider",
            spool_dir=Path(tmp) / "spool",
        )
        app = create_app(settings)
        gw = app.state.gateway
        gw.store.create_org("o")
        gw.store.create_team("o", "platform", "CC")
        key, secret = create_key(gw.store, name="k", team="platform")
        set_key_limits(gw.store, key.id, rpm=100_000, concurrency=1000)
        create_budget(gw.store, name="platform", scope="team", value="platform", amount_usd="1000")
        gw.keyring.reload()
        gw.budgets.reload()
        tracer = Tracer()
        threading.setprofile(tracer)  # the server thread starts after this: it is traced
        with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
            cases = {
                "json": {"stream": False},
                "stream": {"stream": True},
            }
            for name, extra in cases.items():
                body = {
                    "model": "claude-haiku-4-5",
                    "max_tokens": 32,
                    "messages": [{"role": "user", "content": "hello"}],
                    **extra,
                }
                headers = {"x-api-key": secret, "anthropic-version": "2023-06-01"}
                client.post("/v1/messages", json=body, headers=headers).raise_for_status()  # warm-up
                tracer.__init__()  # type: ignore[misc]
                tracer.on = True
                response = client.post("/v1/messages", json=body, headers=headers)
                time.sleep(0.2)  # the budget's settle runs as a task just after the response
                tracer.on = False
                response.raise_for_status()
                handoffs = " -> ".join(Path(h).stem for h in tracer.handoffs)
                print(
                    f"{name:6}  files {len(tracer.files):3}  moves {tracer.moves:4}  "
                    f"re-entries {tracer.reentries:3}  hand-offs {handoffs}"
                )
                if args.show:
                    for file, count in sorted(tracer.files.items()):
                        print(f"        {count:5}  {file}")
        threading.setprofile(None)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
