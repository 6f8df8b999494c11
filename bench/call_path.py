"""Which of Spendgate's files one call runs through, and how control moves between them.

    python bench/call_path.py [--show]
    PYTHONPATH=/path/to/other/checkout python bench/call_path.py    # measure that checkout

Starts the fake provider and a gateway (temporary SQLite, a key with a rate limit and a team
budget, so every step of the path runs) on loopback, sends one warm-up call and then one
measured call per case (JSON, streamed), and traces the server thread with `sys.setprofile`
while the measured call is served. Only Python functions in `spendgate/` count (not the fake
provider, not libraries), and only calls: an `await` that resumes a suspended coroutine is not
a call. For each case it prints:

- files: the distinct `spendgate/` files with a function called while serving the call;
- moves: calls from a function in one file to a function in another;
- re-entries: moves into a file that already has a frame lower on the stack (A -> B -> A);
- hand-offs: the calls from one hot-path module (proxy, call, forward, admission, meter,
  settlement) to another, in order, and revisits: hand-offs to a module that had already had
  control of the call and handed it back (proxy -> call -> proxy -> forward -> call: call again).
"""

from __future__ import annotations

import argparse
import dis
import inspect
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from types import CodeType, FrameType
from typing import Any

import httpx

import spendgate
from spendgate.admin.budget_service import create_budget, set_key_limits
from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.config import Settings
from spendgate.fake_upstream import FakeUpstream
from spendgate.servethread import ServerThread

# The package as imported: PYTHONPATH=/path/to/other/checkout measures that checkout instead.
PACKAGE = str(Path(spendgate.__file__).resolve().parent) + "/"
EXCLUDED = (PACKAGE + "fake_upstream/",)
# The files that carry one call's control flow, before and after the hot-path refactor.
HOT = {"proxy.py", "call.py", "forward.py", "admission.py", "meter.py", "settlement.py"}
_SUSPENDABLE = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ASYNC_GENERATOR


class Tracer:
    def __init__(self) -> None:
        self.on = False
        self.thread_name = "spendgate-server"
        self.files: Counter[str] = Counter()
        self.moves = 0
        self.reentries = 0
        self.handoffs: list[tuple[str, str]] = []
        self._starts: dict[CodeType, int] = {}

    def __call__(self, frame: FrameType, event: str, arg: Any) -> None:
        if not self.on or event != "call" or threading.current_thread().name != self.thread_name:
            return
        callee = _ours(frame.f_code.co_filename)
        if callee is None or self._resumed(frame):
            return
        self.files[callee] += 1
        caller = _nearest_ours(frame.f_back)
        if caller is None or caller[0] == callee:
            return
        self.moves += 1
        stack = caller[1].f_back
        while stack is not None:
            if _ours(stack.f_code.co_filename) == callee:
                self.reentries += 1
                break
            stack = stack.f_back
        if Path(callee).name in HOT:
            hot_caller = _nearest_ours(frame.f_back, hot=True)
            if hot_caller is not None and hot_caller[0] != callee:
                self.handoffs.append((hot_caller[0], callee))

    def revisits(self) -> int:
        seen: set[str] = set()
        count, last = 0, None
        for _, callee in self.handoffs:
            if callee != last and callee in seen:
                count += 1
            seen.add(callee)
            last = callee
        return count

    def _resumed(self, frame: FrameType) -> bool:
        """An `await` resuming a suspended coroutine (the profiler reports it as a call)."""
        code = frame.f_code
        if not code.co_flags & _SUSPENDABLE:
            return False
        start = self._starts.get(code)
        if start is None:
            start = self._starts[code] = next(
                i.offset for i in dis.get_instructions(code) if i.opname == "RESUME"
            )
        return frame.f_lasti > start


def _nearest_ours(frame: FrameType | None, hot: bool = False) -> tuple[str, FrameType] | None:
    while frame is not None:
        name = _ours(frame.f_code.co_filename)
        if name is not None and (not hot or Path(name).name in HOT):
            return name, frame
        frame = frame.f_back
    return None


def _ours(filename: str) -> str | None:
    if not filename.startswith(PACKAGE) or filename.startswith(EXCLUDED):
        return None
    return "spendgate/" + filename[len(PACKAGE) :]


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
                handoffs = ", ".join(f"{Path(a).stem}->{Path(b).stem}" for a, b in tracer.handoffs)
                print(
                    f"{name:6}  files {len(tracer.files):3}  moves {tracer.moves:4}  "
                    f"re-entries {tracer.reentries:3}  hand-offs {len(tracer.handoffs):2} "
                    f"(revisits {tracer.revisits()}): {handoffs}"
                )
                if args.show:
                    for file, count in sorted(tracer.files.items()):
                        print(f"        {count:5}  {file}")
        threading.setprofile(None)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
