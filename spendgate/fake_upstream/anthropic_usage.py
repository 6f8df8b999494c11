"""Anthropic token accounting: the fake tokenizer over a Messages request and the prompt-cache simulation."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from spendgate.fake_upstream.common import BoundedMap, json_chars, tokens_for

IMAGE_CHARS = 1600 * 4  # an image costs a fixed ~1600 tokens rather than its base64 length


def _block_chars(block: object) -> int:
    if isinstance(block, str):
        return len(block)
    if not isinstance(block, dict):
        return 0
    kind = block.get("type")
    if kind == "text":
        return len(str(block.get("text", "")))
    if kind == "thinking":
        return len(str(block.get("thinking", "")))
    if kind == "tool_use":
        return len(str(block.get("name", ""))) + json_chars(block.get("input", {}))
    if kind == "tool_result":
        content = block.get("content", "")
        return sum(map(_block_chars, content)) if isinstance(content, list) else len(str(content))
    if kind == "image":
        return IMAGE_CHARS
    return json_chars(_without_cache_control(block))


def _without_cache_control(item: object) -> object:
    """Markers are not content: they neither cost tokens nor change the cache key."""
    if isinstance(item, dict) and "cache_control" in item:
        return {k: v for k, v in item.items() if k != "cache_control"}
    return item


def _segments(payload: dict[str, Any]) -> Iterator[tuple[str, object]]:
    """The prompt in cache-prefix order (tools, system, messages), one item per cacheable block."""
    tools = payload.get("tools")
    if isinstance(tools, list):
        for tool in tools:
            yield "tool", tool
    system = payload.get("system")
    if isinstance(system, str | dict):
        yield "system", system
    elif isinstance(system, list):
        for block in system:
            yield "system", block
    messages = payload.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        role, content = str(message.get("role", "")), message.get("content", "")
        for block in content if isinstance(content, list) else (content,):
            yield role, block


def _chars(tag: str, item: object) -> int:
    return json_chars(_without_cache_control(item)) if tag == "tool" else _block_chars(item)


def count_input_tokens(payload: dict[str, Any]) -> int:
    return max(1, tokens_for(sum(_chars(tag, item) for tag, item in _segments(payload))))


@dataclass(frozen=True, slots=True)
class PromptUsage:
    input_tokens: int  # uncached
    cache_read: int
    cache_write_5m: int
    cache_write_1h: int


def _cache_control(item: object) -> dict[str, Any] | None:
    cc = item.get("cache_control") if isinstance(item, dict) else None
    return cc if isinstance(cc, dict) else None


def prompt_usage(payload: dict[str, Any], model: str, cache: BoundedMap[int]) -> PromptUsage:
    """Input tokens split into uncached / cache read / cache write, simulating the prompt cache.

    The prefix up to the last ``cache_control`` breakpoint is cached. It is read up to the longest
    block boundary seen at a breakpoint before (a repeated prompt reads it all, a grown conversation
    reads the old part), and the rest of it is written with the last breakpoint's TTL.
    """
    segments = list(_segments(payload))
    sizes = [_chars(tag, item) for tag, item in segments]
    total = max(1, tokens_for(sum(sizes)))
    breakpoints = {i for i, (_, item) in enumerate(segments) if _cache_control(item)}
    last_cc = _cache_control(segments[max(breakpoints)][1]) if breakpoints else None
    top_cc = _cache_control(payload)
    if top_cc and segments:  # automatic caching: the breakpoint goes on the last block
        breakpoints.add(len(segments) - 1)
        last_cc = _cache_control(segments[-1][1]) or top_cc
    if not breakpoints or last_cc is None:
        return PromptUsage(total, 0, 0, 0)
    last = max(breakpoints)
    hasher = hashlib.blake2b(model.encode(), digest_size=16)
    running = read_chars = 0
    for i in range(last + 1):
        tag, item = segments[i]
        hasher.update(orjson.dumps([tag, _without_cache_control(item)]))
        running += sizes[i]
        key = hasher.digest()
        if cache.get(key) is not None:
            read_chars = running
        if i in breakpoints:
            cache.put(key, running)
    cached = min(tokens_for(running), total)
    read = min(tokens_for(read_chars), cached)
    write = cached - read
    one_hour = last_cc.get("ttl") == "1h"
    return PromptUsage(total - cached, read, 0 if one_hour else write, write if one_hour else 0)


def build_usage(prompt: PromptUsage, output_tokens: int, override: dict[str, Any] | None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": prompt.input_tokens,
        "cache_creation_input_tokens": prompt.cache_write_5m + prompt.cache_write_1h,
        "cache_read_input_tokens": prompt.cache_read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": prompt.cache_write_5m,
            "ephemeral_1h_input_tokens": prompt.cache_write_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }
    if not override:
        return usage
    for key, value in override.items():
        if key == "cache_creation" and isinstance(value, dict):
            usage[key] = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0, **value}
        else:
            usage[key] = value
    # Keep the total and its TTL split consistent when only one of them was overridden.
    if "cache_creation" in override and "cache_creation_input_tokens" not in override:
        split = usage["cache_creation"]
        values = split.values() if isinstance(split, dict) else ()
        usage["cache_creation_input_tokens"] = sum(v for v in values if isinstance(v, int))
    elif "cache_creation_input_tokens" in override and "cache_creation" not in override:
        usage["cache_creation"] = {
            "ephemeral_5m_input_tokens": usage["cache_creation_input_tokens"],
            "ephemeral_1h_input_tokens": 0,
        }
    return usage
