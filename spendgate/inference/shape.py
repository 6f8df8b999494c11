"""What inference sees of a call: who sent it and its shape, never the text of its prompt."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class CallShape(NamedTuple):  # a NamedTuple: built on the hot path, cheaper than a dataclass
    provider: str  # the API it came in on: anthropic, openai, bedrock, vertex
    endpoint: str  # the path called, e.g. /v1/messages
    model: str  # as requested
    stream: bool
    max_tokens: int | None  # max_tokens / max_completion_tokens / max_output_tokens, if given
    tools: bool  # the request defines tools
    thinking: bool  # extended thinking / reasoning requested
    messages: int  # messages (or input items) in the request
    last_role: str  # role of the last message ("tool" for a tool's output item), "" if none
    tool_results: bool  # the last message hands back tool results: a turn of a tool loop
    input_tokens: int  # body bytes / 4, as routing estimates it
    key: str  # the key's name
    team: str  # the key's team's name
    tags: Mapping[str, str]  # tags declared by the call or the key
    headers: Mapping[str, str]  # lower-case names
    client: str | None = None  # the first client whose headers matched (rules' [clients.*])
    client_via: str = ""  # the header that identified it, e.g. "x-app: cli"
