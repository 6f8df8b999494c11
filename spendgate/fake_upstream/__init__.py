"""A fake of the Anthropic and OpenAI HTTP APIs for tests, the demo and benchmarks.

One server speaks both wire formats (JSON, SSE, error bodies). Anthropic base URL: ``url``; OpenAI
base URL: ``url + "/v1"``. Per-request controls, as headers (a gateway forwards them):

- ``x-fake-mode``: ``ok`` | ``error-400`` | ``error-401`` | ``error-429`` | ``error-500`` |
  ``error-529`` (503 for OpenAI) | ``stream-error`` | ``stream-cut`` | ``unknown-event``
  (stream modes only change streaming requests; an unknown mode is a 400)
- ``x-fake-usage``: JSON object overriding usage fields
- ``x-fake-output-tokens``, ``x-fake-latency-ms``, ``x-fake-chunk-delay-ms``

Recorded requests: ``FakeUpstream.requests`` in process, ``GET``/``DELETE /_fake/requests`` over HTTP.
"""

from spendgate.fake_upstream.app import create_fake_app
from spendgate.fake_upstream.server import FakeUpstream
from spendgate.fake_upstream.settings import FakeSettings, RecordedRequest

__all__ = ["FakeSettings", "FakeUpstream", "RecordedRequest", "create_fake_app"]
