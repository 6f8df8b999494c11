"""A fake of the Anthropic and OpenAI HTTP APIs for tests, the demo and benchmarks.

One server speaks both wire formats (JSON, SSE, error bodies): Anthropic Messages, count_tokens and
Message Batches; OpenAI Chat Completions, the Responses API (create, retrieve, delete, cancel,
input_tokens) and embeddings. Anthropic base URL: ``url``; OpenAI
base URL: ``url + "/v1"``. Per-request controls, as headers (a gateway forwards them):

- ``x-fake-mode``: ``ok`` | ``error-400`` | ``error-401`` | ``error-429`` | ``error-500`` |
  ``error-529`` (503 for OpenAI) | ``stream-error`` | ``stream-cut`` | ``stream-failed``
  (Responses API: ``response.failed``) | ``unknown-event`` (stream modes only change streaming
  requests, and ``stream-cut`` batch results; an unknown mode is a 400)
- ``x-fake-usage``: JSON object overriding usage fields
- ``x-fake-output-tokens``, ``x-fake-latency-ms``, ``x-fake-chunk-delay-ms``, ``x-fake-batch-ms``
- ``x-fake-stream-chunks``: ``event`` (a body write per event, the default) or ``whole`` (the
  stream in one write, when there is no chunk delay; `--whole-streams` makes it the default)

Recorded requests: ``FakeUpstream.requests`` in process, ``GET``/``DELETE /_fake/requests`` over HTTP.
"""

from spendgate.fake_upstream.app import create_fake_app
from spendgate.fake_upstream.server import FakeUpstream
from spendgate.fake_upstream.settings import FakeSettings, RecordedRequest

__all__ = ["FakeSettings", "FakeUpstream", "RecordedRequest", "create_fake_app"]
