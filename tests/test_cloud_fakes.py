"""The Bedrock and Vertex fakes, driven by the clients a gateway's upstream would be: botocore (SigV4,
event streams, error codes), google-auth (the service-account token grant) and the official
`anthropic.AnthropicBedrock` / `anthropic.AnthropicVertex` SDKs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import botocore.session
import httpx2
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError as AwsError

from spendgate.fake_upstream import FakeSettings, FakeUpstream
from tests.cloud import AWS_KEY_ID, AWS_SECRET, ServiceAccount, service_account

MODEL = "us.anthropic.claude-sonnet-4-6"
USER = [{"role": "user", "content": "What is the capital of France?"}]
INVOKE = (
    b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}'
)


@pytest.fixture(scope="module")
def account(tmp_path_factory: pytest.TempPathFactory) -> ServiceAccount:
    # token_uri is filled in once the fake has a port: the file is rewritten below.
    return service_account(tmp_path_factory.mktemp("gcp"), "http://127.0.0.1:1/token")


@pytest.fixture(scope="module")
def fake(account: ServiceAccount) -> Iterator[FakeUpstream]:
    settings = FakeSettings(
        aws_access_key_id=AWS_KEY_ID, aws_secret_access_key=AWS_SECRET, google_public_key=account.public_key
    )
    with FakeUpstream(settings) as upstream:
        account.path.write_text(
            account.path.read_text().replace("http://127.0.0.1:1/token", f"{upstream.url}/token")
        )
        yield upstream


def aws(fake: FakeUpstream, service: str = "bedrock-runtime", secret: str = AWS_SECRET) -> Any:
    return botocore.session.get_session().create_client(
        service,
        region_name="us-west-2",
        endpoint_url=fake.url,
        aws_access_key_id=AWS_KEY_ID,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}),
    )


def google_token(account: ServiceAccount) -> str:
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account as sa

    credentials = sa.Credentials.from_service_account_file(
        str(account.path), scopes=["https://www.googleapis.com/auth/cloud-platform"]
    )
    credentials.refresh(Request())
    assert credentials.expiry is not None and credentials.expiry > dt.datetime.now(dt.UTC).replace(
        tzinfo=None
    )
    return str(credentials.token)


# ---- Bedrock ----------------------------------------------------------------------------------------


def test_sigv4_signed_by_botocore_is_accepted_and_wrong_secret_refused(fake: FakeUpstream) -> None:
    answer = aws(fake).invoke_model(modelId=MODEL, body=INVOKE)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert int(answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-bedrock-output-token-count"]) == 24
    with pytest.raises(AwsError) as refused:
        aws(fake, secret="not-the-secret").invoke_model(modelId=MODEL, body=INVOKE)
    assert refused.value.response["Error"]["Code"] == "InvalidSignatureException"
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_unsigned_call_is_refused_in_bedrocks_words(fake: FakeUpstream) -> None:
    client = anthropic.AnthropicBedrock(
        api_key="not-aws", base_url=fake.url, aws_region="us-east-1", max_retries=0
    )
    with pytest.raises(anthropic.PermissionDeniedError) as refused:
        client.messages.create(model=MODEL, max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert refused.value.response.headers["x-amzn-errortype"].startswith("IncompleteSignatureException")


@pytest.mark.parametrize(
    ("mode", "status", "code"),
    [
        ("error-400", 400, "ValidationException"),
        ("error-429", 429, "ThrottlingException"),
        ("error-500", 500, "InternalServerException"),
        ("error-529", 503, "ServiceUnavailableException"),
    ],
)
def test_bedrock_error_shapes(fake: FakeUpstream, mode: str, status: int, code: str) -> None:
    client = aws(fake)
    client.meta.events.register(
        "before-sign.bedrock-runtime.*", lambda request, **_: request.headers.__setitem__("x-fake-mode", mode)
    )
    with pytest.raises(AwsError) as refused:
        client.invoke_model(modelId=MODEL, body=INVOKE)
    assert refused.value.response["Error"]["Code"] == code
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == status


def test_invoke_body_is_checked_as_bedrock_does(fake: FakeUpstream) -> None:
    with pytest.raises(AwsError) as refused:
        aws(fake).invoke_model(modelId=MODEL, body=b'{"model":"x","max_tokens":5,"messages":[]}')
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "extraneous key [model]" in refused.value.response["Error"]["Message"]


def test_invoke_stream_is_an_aws_event_stream(fake: FakeUpstream) -> None:
    answer = aws(fake).invoke_model_with_response_stream(modelId=MODEL, body=INVOKE)
    assert answer["contentType"] == "application/json"
    import json

    events = [json.loads(e["chunk"]["bytes"]) for e in answer["body"]]  # botocore decodes the base64
    kinds = [e["type"] for e in events]
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    assert events[0]["message"]["model"] == "claude-sonnet-4-6"
    assert events[-1]["amazon-bedrock-invocationMetrics"]["outputTokenCount"] == 24


def test_converse_and_converse_stream(fake: FakeUpstream) -> None:
    client = aws(fake)
    messages = [{"role": "user", "content": [{"text": "hello there"}]}]
    answer = client.converse(modelId=MODEL, messages=messages, inferenceConfig={"maxTokens": 8})
    assert answer["stopReason"] == "max_tokens"
    usage = answer["usage"]
    assert usage["outputTokens"] == 8 and usage["totalTokens"] == usage["inputTokens"] + 8
    stream = client.converse_stream(modelId=MODEL, messages=messages)["stream"]
    events = [next(iter(e)) for e in stream]
    assert events[0] == "messageStart" and events[-3:] == ["contentBlockStop", "messageStop", "metadata"]


def test_inference_profiles_listing(fake: FakeUpstream) -> None:
    profiles = aws(fake, "bedrock").list_inference_profiles(typeEquals="SYSTEM_DEFINED")
    ids = {p["inferenceProfileId"] for p in profiles["inferenceProfileSummaries"]}
    assert {"us.anthropic.claude-sonnet-4-6", "global.anthropic.claude-haiku-4-5-20251001-v1:0"} <= ids


def test_anthropic_bedrock_sdk_streams_from_the_fake() -> None:
    # The SDK signs with boto3 (not a dependency): this fake checks no signature.
    with FakeUpstream() as unsigned:
        client = anthropic.AnthropicBedrock(
            api_key="unused", aws_region="us-east-1", base_url=unsigned.url, max_retries=0
        )
        stream_and_error(client)


def stream_and_error(client: anthropic.AnthropicBedrock) -> None:
    with client.messages.stream(model=MODEL, max_tokens=100, messages=USER) as stream:  # type: ignore[arg-type]
        text = stream.get_final_text()
        usage = stream.get_final_message().usage
    assert text.startswith("This is a deterministic reply") and usage.output_tokens == 24
    with (
        pytest.raises(anthropic.APIStatusError) as cut,
        client.messages.stream(
            model=MODEL,
            max_tokens=100,
            messages=USER,  # type: ignore[arg-type]
            extra_headers={"x-fake-mode": "stream-error"},
        ) as stream,
    ):
        stream.get_final_text()
    assert "modelStreamErrorException" in str(cut.value)


# ---- Vertex ----------------------------------------------------------------------------------------


def test_service_account_grant_and_vertex_call(fake: FakeUpstream, account: ServiceAccount) -> None:
    token = google_token(account)  # google-auth signs a JWT with the key file, the fake checks it
    client = anthropic.AnthropicVertex(
        access_token=token,
        region="us-east5",
        project_id="spendgate-test",
        base_url=f"{fake.url}/v1",
        max_retries=0,
    )
    message = client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=USER)  # type: ignore[arg-type]
    assert message.model == "claude-sonnet-4-6" and message.usage.output_tokens == 24
    with client.messages.stream(model="claude-haiku-4-5@20251001", max_tokens=100, messages=USER) as stream:  # type: ignore[arg-type]
        assert stream.get_final_message().model == "claude-haiku-4-5-20251001"
    path = fake.requests[-1].path
    assert path.endswith("/publishers/anthropic/models/claude-haiku-4-5@20251001:streamRawPredict")


def test_vertex_refuses_tokens_it_did_not_issue(fake: FakeUpstream) -> None:
    client = anthropic.AnthropicVertex(
        access_token="ya29.made-up",
        region="us-east5",
        project_id="p",
        base_url=f"{fake.url}/v1",
        max_retries=0,
    )
    with pytest.raises(anthropic.AuthenticationError) as refused:
        client.messages.create(model="claude-sonnet-4-6", max_tokens=10, messages=USER)  # type: ignore[arg-type]
    assert refused.value.body == {
        "error": {"code": 401, "message": refused.value.body["error"]["message"], "status": "UNAUTHENTICATED"}
    }  # type: ignore[index]


def test_token_grant_refuses_a_key_it_does_not_know(fake: FakeUpstream, tmp_path: Path) -> None:
    stranger = service_account(tmp_path, f"{fake.url}/token")
    from google.auth.exceptions import RefreshError

    with pytest.raises(RefreshError, match="invalid_grant"):
        google_token(stranger)
    form = {"grant_type": "password", "username": "x"}
    answer = httpx2.post(f"{fake.url}/token", data=form)
    assert answer.status_code == 400 and answer.json()["error"] == "unsupported_grant_type"
