"""Record what real clients send, for tests/client_shapes.json (the use-case replay check).

    unshare -n python -m tests.record_client_shapes OUT.json --claude PATH [--codex PATH]
        [--llm PATH] [--aider PATH]

Not run by the test suite (it needs the CLIs and minutes); run it by hand when a client changes,
then review the diff of tests/client_shapes.json and set each new shape's expected use case. Inside
`unshare -n` only loopback exists: it serves a scripted upstream (Anthropic Messages whose first
main-loop answer asks for a subagent through Claude Code's Agent tool, so the subagent's calls are
recorded too; the OpenAI side is the bundled fake) and a Spendgate gateway in front of it, runs
each client once, and writes every request the upstream received with prompt text and tool schemas
redacted (`redact`). Claude Code runs twice: `claude -p`, and interactively in a pseudo-terminal
(its session title and auto mode's permission checks only happen there).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pty
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from spendgate.admin.service import create_key
from spendgate.app import create_app
from spendgate.config import Settings
from spendgate.fake_upstream import FakeSettings, FakeUpstream
from spendgate.servethread import ServerThread

PROVIDER_KEY = "sk-provider-record"
_REDACTED_TEXT = {"text", "description", "prompt", "instructions", "data", "signature", "encrypted_content"}
_REDACTED_IDS = {"user_id", "prompt_cache_key"}
_DROPPED_HEADERS = {"host", "content-length", "authorization", "x-api-key", "accept-encoding"}


def redact(value: Any) -> Any:
    """The request's shape with its words taken out: strings under text-like keys, tool schemas."""
    if isinstance(value, list):
        return [redact(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in ("input_schema", "parameters"):
            out[key] = {"type": "object"}
        elif key == "client_metadata" and isinstance(item, dict):
            out[key] = dict.fromkeys(item, "…")
        elif isinstance(item, str) and (
            key in _REDACTED_TEXT | _REDACTED_IDS or key in ("content", "input", "system", "output")
        ):
            out[key] = "…"
        else:
            out[key] = redact(item)
    return out


class ScriptedAnthropic:
    """Anthropic Messages that asks for one subagent (Agent tool), then one Bash call inside it."""

    def __init__(self) -> None:
        self.recorded: list[dict[str, Any]] = []
        self.asked = False
        self.ids = itertools.count()

    async def messages(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.recorded.append(
            {
                "path": request.url.path,
                "query": request.url.query,
                "headers": dict(request.headers),
                "body": body,
            }
        )
        agent = "x-claude-code-agent-id" in request.headers
        last = (body.get("messages") or [{}])[-1]
        after_tool = isinstance(last.get("content"), list) and any(
            isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]
        )
        tools = {t.get("name") for t in body.get("tools") or []}
        if not agent and not after_tool and not self.asked and "Agent" in tools:
            self.asked = True
            blocks = [
                self._tool(
                    "Agent",
                    {
                        "description": "Look at files",
                        "prompt": "List the files.",
                        "subagent_type": "general-purpose",
                        "run_in_background": False,
                    },
                )
            ]
        elif agent and not after_tool and "Bash" in tools:
            blocks = [self._tool("Bash", {"command": "ls", "description": "List files"})]
        else:
            blocks = [{"type": "text", "text": "Done."}]
        stop = "tool_use" if blocks[0]["type"] == "tool_use" else "end_turn"
        model = body.get("model", "unknown")
        if body.get("stream"):
            return StreamingResponse(self._events(model, blocks, stop), media_type="text/event-stream")
        usage = {"input_tokens": 100, "output_tokens": 20}
        answer = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": blocks,
            "stop_reason": stop,
            "usage": usage,
        }
        return JSONResponse(answer)

    def _tool(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        return {"type": "tool_use", "id": f"toolu_{next(self.ids)}", "name": name, "input": arguments}

    def _events(self, model: str, blocks: list[dict[str, Any]], stop: str) -> Iterator[bytes]:
        start = {
            "id": f"msg_{next(self.ids)}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 100, "output_tokens": 1},
        }
        events: list[tuple[str, dict[str, Any]]] = [
            ("message_start", {"type": "message_start", "message": start})
        ]
        for i, block in enumerate(blocks):
            if block["type"] == "text":
                opened, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
            else:
                opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
                delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            events += [
                ("content_block_start", {"type": "content_block_start", "index": i, "content_block": opened}),
                ("content_block_delta", {"type": "content_block_delta", "index": i, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop", "index": i}),
            ]
        events += [
            (
                "message_delta",
                {"type": "message_delta", "delta": {"stop_reason": stop}, "usage": {"output_tokens": 20}},
            ),
            ("message_stop", {"type": "message_stop"}),
        ]
        for name, data in events:
            yield f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def interactive(claude: str, home: Path, env: dict[str, str], prompt: str, seconds: float = 40) -> None:
    """Claude Code in a pseudo-terminal for `seconds`, then /exit: what only an interactive session sends."""
    settings = {"hasCompletedOnboarding": True, "projects": {str(home): {"hasTrustDialogAccepted": True}}}
    (home / ".claude.json").write_text(json.dumps(settings))
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(home)
        os.execve(claude, [claude, prompt], {**env, "TERM": "xterm"})
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                os.read(fd, 65536)
            except OSError:
                break
    os.write(fd, b"/exit\r")
    time.sleep(3)
    os.kill(pid, 9)
    os.waitpid(pid, 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    for client in ("claude", "codex", "llm", "aider"):
        parser.add_argument(f"--{client}")
    args = parser.parse_args()
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    work = args.out.with_suffix(".d")
    work.mkdir(parents=True, exist_ok=True)
    anthropic = ScriptedAnthropic()
    scripted = Starlette(routes=[Route("/v1/messages", anthropic.messages, methods=["POST"])])
    recorded: dict[str, list[dict[str, Any]]] = {}
    with ServerThread(scripted) as upstream, FakeUpstream(FakeSettings(openai_api_key=PROVIDER_KEY)) as fake:
        settings = Settings(
            database_url=f"sqlite:///{work}/spendgate.db",
            anthropic_base_url=upstream.url,
            anthropic_api_key=PROVIDER_KEY,
            openai_base_url=fake.openai_url,
            openai_api_key=PROVIDER_KEY,
        )
        app = create_app(settings)
        gw = app.state.gateway
        gw.store.create_org("acme")
        gw.store.create_team("acme", "platform", "CC")
        _, key = create_key(gw.store, name="recorder", team="platform")
        gw.keyring.reload()
        with ServerThread(app) as server:
            home = work / "home"
            home.mkdir(exist_ok=True)
            base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
            claude_env = {
                **base,
                "ANTHROPIC_BASE_URL": server.url,
                "ANTHROPIC_AUTH_TOKEN": key,
                "DISABLE_AUTOUPDATER": "1",
            }
            openai_env = {
                **base,
                "OPENAI_BASE_URL": f"{server.url}/v1",
                "OPENAI_API_BASE": f"{server.url}/v1",
                "OPENAI_API_KEY": key,
                "LLM_USER_PATH": str(home / "llm"),
            }
            if args.claude:
                subprocess.run(
                    [args.claude, "-p", "look at the files using a subagent"],
                    env=claude_env,
                    cwd=home,
                    capture_output=True,
                    timeout=300,
                    check=False,
                )
                recorded["claude -p"] = list(anthropic.recorded)
                anthropic.recorded.clear()
                anthropic.asked = False  # interactive: a tool again, which auto mode checks
                interactive(args.claude, home, claude_env, "fix the typo in README")
                recorded["claude interactive"] = list(anthropic.recorded)
            runs = {
                "codex exec": [args.codex, "exec", "--skip-git-repo-check", "-m", "gpt-5", "say hi"],
                "llm": [args.llm, "-m", "gpt-4o-mini", "say hi"],
                "aider": [
                    args.aider,
                    "--model",
                    "openai/gpt-4o-mini",
                    "--no-git",
                    "--yes-always",
                    "--no-check-update",
                    "--no-show-model-warnings",
                    "--no-analytics",
                    "--message",
                    "say hi",
                ],
            }
            for name, argv in runs.items():
                if argv[0] is None:
                    continue
                env = dict(openai_env)
                if name == "codex exec":
                    codex_home = home / "codex"
                    codex_home.mkdir(exist_ok=True)
                    from tests.codex_session import config_toml

                    (codex_home / "config.toml").write_text(config_toml(server.url, {}))
                    env["CODEX_HOME"] = str(codex_home)
                fake.clear()
                subprocess.run(
                    argv,
                    env=env,
                    cwd=home,
                    capture_output=True,
                    timeout=300,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
                recorded[name] = [
                    {"path": r.path, "query": r.query, "headers": dict(r.headers), "body": json.loads(r.body)}
                    for r in fake.requests
                    if r.method == "POST"
                ]
    shapes = [
        {
            "client": client,
            "path": r["path"],
            "query": r["query"],
            "headers": {k: v for k, v in r["headers"].items() if k not in _DROPPED_HEADERS},
            "body": redact(r["body"]),
        }
        for client, requests in recorded.items()
        for r in requests
    ]
    args.out.write_text(json.dumps(shapes, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
