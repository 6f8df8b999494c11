"""OpenAI token accounting for the fakes: the fake tokenizer over a request and the prompt cache.

Chat Completions and the Responses API shape their prompts differently (``messages`` vs
``instructions`` + ``input`` items) but share the tokenizer and the automatic prompt cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from spendgate.fake_upstream.common import BoundedMap, tokens_for

CACHE_MIN_TOKENS = 1024  # shorter prompts are never cached
CACHE_KEY_CHARS = CACHE_MIN_TOKENS * 4  # the cache is keyed on the first 1024 tokens
CACHE_GRANULE = 128  # cached counts come in multiples of 128
IMAGE_CHARS = 1600 * 4


def chat_prompt_pieces(payload: dict[str, Any]) -> Iterator[str]:
    """A Chat Completions prompt's text in cache-prefix order: tools first, then every message."""
    tools = payload.get("tools")
    if tools:
        yield orjson.dumps(tools).decode()
    messages = payload.get("messages")
    for message in messages if isinstance(messages, list) else ():
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and part.get("type") == "text":
                    yield str(part.get("text", ""))
                elif isinstance(part, dict) and part.get("type") == "image_url":
                    yield " " * IMAGE_CHARS
                else:
                    yield orjson.dumps(part).decode()
        for call in message.get("tool_calls") or ():
            function = call.get("function", {}) if isinstance(call, dict) else {}
            yield str(function.get("name", "")) + str(function.get("arguments", ""))


def responses_prompt_pieces(payload: dict[str, Any]) -> Iterator[str]:
    """A Responses API prompt in cache-prefix order: tools, instructions, then the input items."""
    tools = payload.get("tools")
    if tools:
        yield orjson.dumps(tools).decode()
    instructions = payload.get("instructions")
    if isinstance(instructions, str):
        yield instructions
    items = payload.get("input")
    if isinstance(items, str):
        yield items
        return
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        content = item.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            for part in content:
                if not isinstance(part, dict):
                    continue
                if part.get("type") in ("input_text", "output_text", "text"):
                    yield str(part.get("text", ""))
                elif part.get("type") == "input_image":
                    yield " " * IMAGE_CHARS
                else:
                    yield orjson.dumps(part).decode()
        elif content is None:  # function calls, their outputs, reasoning items
            yield orjson.dumps({k: v for k, v in item.items() if k not in ("id", "type", "status")}).decode()


def prompt_tokens(pieces: Iterable[str], model: str, cache: BoundedMap[int]) -> tuple[int, int]:
    """(prompt tokens, cached tokens). Long prompts whose first 1024 tokens were seen before hit the cache."""
    texts = list(pieces)
    total = max(1, tokens_for(sum(map(len, texts))))
    if total < CACHE_MIN_TOKENS:
        return total, 0
    head = "".join(texts)[:CACHE_KEY_CHARS]
    key = (model, hashlib.blake2b(head.encode(), digest_size=16).digest())
    previous = cache.get(key)
    cache.put(key, total)
    cached = min(previous, total) // CACHE_GRANULE * CACHE_GRANULE if previous else 0
    return total, cached


def merge_usage(
    usage: dict[str, Any], override: dict[str, Any] | None, parts: tuple[str, str]
) -> dict[str, Any]:
    """Apply an ``x-fake-usage`` override (nested objects merged); the total follows the parts."""
    if not override:
        return usage
    for key, value in override.items():
        current = usage.get(key)
        usage[key] = {**current, **value} if isinstance(current, dict) and isinstance(value, dict) else value
    if "total_tokens" not in override:
        values = (usage.get(parts[0]), usage.get(parts[1]))
        usage["total_tokens"] = sum(v for v in values if isinstance(v, int))
    return usage


def build_usage(
    prompt: int, cached: int, completion: int, reasoning: int, override: dict[str, Any] | None
) -> dict[str, Any]:
    """Chat Completions ``usage``."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    return merge_usage(usage, override, ("prompt_tokens", "completion_tokens"))


def responses_usage(
    prompt: int, cached: int, output: int, reasoning: int, override: dict[str, Any] | None
) -> dict[str, Any]:
    """Responses API ``usage``: ``input_tokens`` includes the cached ones, ``output_tokens`` the reasoning."""
    usage: dict[str, Any] = {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + output,
    }
    return merge_usage(usage, override, ("input_tokens", "output_tokens"))
