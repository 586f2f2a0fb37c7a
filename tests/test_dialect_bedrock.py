"""Amazon Bedrock Converse: requests, responses, streams, errors and both kinds of auth.

Fixtures are written from the AWS docs named in their ``_source``; binary streams are built
from the JSON event lists with the spec encoder in ``test_eventstream``.
"""

from __future__ import annotations

import base64
import datetime
import importlib.util
import json
import logging
import sys

import pytest

from ai_lib_sync import AiClient
from ai_lib_sync.dialects import get_dialect
from ai_lib_sync.errors import (
    AiLibError,
    ConfigurationError,
    InvalidRequestError,
    StreamInterruptedError,
)
from ai_lib_sync.manifest import load_manifest, search_dirs
from ai_lib_sync.testing import Reply
from ai_lib_sync.transport import Prepared
from ai_lib_sync.types import ChatRequest, Message, Tool, ToolCall
from tests.helpers import awkward_chunks, decode_stream, fixture_json, kinds, text_of
from tests.test_eventstream import event, exception

MODEL = "anthropic.claude-3-5-sonnet-20241022-v2:0"
MODEL_ID = f"bedrock/{MODEL}"
CONVERSE = "/model/anthropic.claude-3-5-sonnet-20241022-v2%3A0/converse"
STREAM = CONVERSE + "-stream"
TOP_SONG = Tool("top_song", "Get the most popular song played on a radio station.",
                {"type": "object", "properties": {"sign": {"type": "string"}}, "required": ["sign"]})
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")
ACCESS_KEY, SECRET_KEY = "AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


@pytest.fixture
def bearer(monkeypatch):
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", "ABSKbedrock-api-key-1234567890")
    return "ABSKbedrock-api-key-1234567890"


@pytest.fixture
def client(make_client, bearer):
    return make_client(MODEL_ID, api_key=None)


def stream_bytes(name: str) -> bytes:
    return b"".join(event(kind, payload) for kind, payload in fixture_json(f"bedrock/{name}")["events"])


def encode(request: ChatRequest, stream: bool = False):
    manifest = load_manifest("bedrock", search_dirs())
    return get_dialect("bedrock_converse").encode_request(request, manifest, MODEL, stream)


def ok(name: str) -> Reply:
    return Reply(200, fixture_json(f"bedrock/{name}"))


# --- requests ----------------------------------------------------------------------------


def test_plain_chat_sends_the_documented_request_with_the_api_key(client, server, bearer):
    server.enqueue(ok("converse_text.json"))
    resp, stats = client.chat().user("Create a list of 3 pop songs.").execute_with_stats()
    sent = server.last
    assert (sent.method, sent.path, sent.query) == ("POST", CONVERSE, {})
    assert sent.header("authorization") == f"Bearer {bearer}"
    assert sent.header("content-type") == "application/json"
    assert sent.header("accept") == "application/json"
    assert sent.header("x-amz-date") is None
    assert sent.json == {"messages": [{"role": "user", "content": [{"text": "Create a list of 3 pop songs."}]}]}
    assert resp.content.startswith("Here is a list of 3 pop songs")
    assert (resp.finish_reason, resp.provider, resp.model) == ("stop", "bedrock", MODEL)
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens, resp.usage.total_tokens) == (125, 60, 185)
    assert stats.cost_usd == pytest.approx((125 * 3.0 + 60 * 15.0) / 1e6)


def test_system_multi_turn_and_inference_config(client, server):
    server.enqueue(ok("converse_text.json"))
    (client.chat().system("You are terse.").user("Hi").assistant("Hello!").user("Name a song.")
     .temperature(0.5).top_p(0.9).max_tokens(200).stop(["\n\n", "END"]).execute())
    assert server.last.json == {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]},
                     {"role": "assistant", "content": [{"text": "Hello!"}]},
                     {"role": "user", "content": [{"text": "Name a song."}]}],
        "system": [{"text": "You are terse."}],
        "inferenceConfig": {"maxTokens": 200, "temperature": 0.5, "topP": 0.9, "stopSequences": ["\n\n", "END"]},
    }


def test_temperature_above_bedrocks_range_is_refused_before_io(client, server):
    with pytest.raises(InvalidRequestError, match="temperature from 0 to 1"):
        client.chat().user("Hi").temperature(1.5).execute()
    assert server.requests == []


def test_tool_round_trip(client, server):
    server.enqueue(ok("converse_tool_use.json"), ok("converse_text.json"))
    first = client.chat().user("What is the most popular song on WZPZ?").tools([TOP_SONG]).tool_choice("auto").execute()
    assert server.last.json["toolConfig"] == {
        "tools": [{"toolSpec": {"name": "top_song", "description": "Get the most popular song played on a radio station.",
                                "inputSchema": {"json": TOP_SONG.parameters}}}],
        "toolChoice": {"auto": {}}}
    assert first.finish_reason == "tool_calls"
    assert first.tool_calls == [ToolCall("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song", {"sign": "WZPZ"}, '{"sign": "WZPZ"}')]

    (client.chat().user("What is the most popular song on WZPZ?").tools([TOP_SONG])
     .assistant(None, first.tool_calls)
     .tool_result("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", {"song": "Elemental Hotel", "artist": "8 Storey Hike"})
     .execute())
    assert server.last.json["messages"] == [
        {"role": "user", "content": [{"text": "What is the most popular song on WZPZ?"}]},
        {"role": "assistant", "content": [{"toolUse": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                                                       "name": "top_song", "input": {"sign": "WZPZ"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
                                                     "content": [{"json": {"song": "Elemental Hotel",
                                                                           "artist": "8 Storey Hike"}}]}}]},
    ]


def test_parallel_tool_results_and_a_following_user_text_share_one_user_turn():
    messages = [Message.user("Weather?"),
                Message.assistant("Checking.", [ToolCall("t1", "w", {"c": "A"}), ToolCall("t2", "w", {"c": "B"})]),
                Message.tool("t1", "sunny"),
                Message("tool", "[1, 2]", tool_call_id="t2", extra={"status": "error"}),
                Message.user("Thanks")]
    body = encode(ChatRequest(MODEL, messages, tools=[Tool("w")])).body
    assert body["messages"][1:] == [
        {"role": "assistant", "content": [{"text": "Checking."},
                                          {"toolUse": {"toolUseId": "t1", "name": "w", "input": {"c": "A"}}},
                                          {"toolUse": {"toolUseId": "t2", "name": "w", "input": {"c": "B"}}}]},
        {"role": "user", "content": [{"toolResult": {"toolUseId": "t1", "content": [{"text": "sunny"}]}},
                                     {"toolResult": {"toolUseId": "t2", "content": [{"text": "[1, 2]"}],
                                                     "status": "error"}},
                                     {"text": "Thanks"}]},
    ]
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "w", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]}


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"auto": {}}), ("required", {"any": {}}), ("top_song", {"tool": {"name": "top_song"}}), (None, None)])
def test_tool_choice_mapping(choice, expected):
    config = encode(ChatRequest(MODEL, [Message.user("hi")], tools=[TOP_SONG], tool_choice=choice)).body["toolConfig"]
    assert config.get("toolChoice") == expected


def test_tool_choice_none_drops_the_tools_unless_the_history_uses_them():
    plain = encode(ChatRequest(MODEL, [Message.user("hi")], tools=[TOP_SONG], tool_choice="none")).body
    assert "toolConfig" not in plain
    history = [Message.user("hi"), Message.assistant(None, [ToolCall("t1", "top_song", {"sign": "WZPZ"})]),
               Message.tool("t1", "ok")]
    body = encode(ChatRequest(MODEL, history, tools=[TOP_SONG], tool_choice="none")).body
    assert body["toolConfig"] == {"tools": [{"toolSpec": {"name": "top_song", "description": TOP_SONG.description,
                                                          "inputSchema": {"json": TOP_SONG.parameters}}}]}


def test_images_are_sent_inline_from_data_urls_and_local_files(client, server, tmp_path):
    path = tmp_path / "pixel.png"
    path.write_bytes(PNG)
    encoded = base64.b64encode(PNG).decode()
    server.enqueue(ok("converse_text.json"))
    client.chat().messages([{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{encoded}"}}]}]).user("and", images=[str(path)]).execute()
    assert server.last.json["messages"] == [{"role": "user", "content": [
        {"text": "Compare"},
        {"image": {"format": "jpeg", "source": {"bytes": encoded}}},
        {"text": "and"},
        {"image": {"format": "png", "source": {"bytes": encoded}}}]}]


def test_image_urls_are_refused_before_io(client, server):
    with pytest.raises(InvalidRequestError, match="does not accept image URLs"):
        client.chat().user("What is this?", images=["https://example.com/cat.png"]).execute()
    assert server.requests == []


def test_param_extras_go_to_additional_model_request_fields_or_the_top_level():
    request = ChatRequest(MODEL, [Message.user("hi")], max_tokens=50, extra={
        "top_k": 200, "thinking": {"type": "enabled", "budget_tokens": 1024},
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
        "inferenceConfig": {"temperature": 0.2}, "additionalModelResponseFieldPaths": ["/stop_sequence"]})
    body = encode(request).body
    assert body == {
        "messages": [{"role": "user", "content": [{"text": "hi"}]}],
        "inferenceConfig": {"maxTokens": 50, "temperature": 0.2},
        "guardrailConfig": {"guardrailIdentifier": "gr-1", "guardrailVersion": "1"},
        "additionalModelResponseFieldPaths": ["/stop_sequence"],
        "additionalModelRequestFields": {"top_k": 200, "thinking": {"type": "enabled", "budget_tokens": 1024}},
    }


def test_json_schema_is_a_forced_tool_where_the_model_has_no_native_structured_output():
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": schema}}
    body = encode(ChatRequest(MODEL, [Message.user("hi")], response_format=fmt)).body
    assert "outputConfig" not in body
    assert body["toolConfig"] == {"tools": [{"toolSpec": {
        "name": "ai_lib_sync_json_response",
        "description": "Give the answer as a JSON object matching this input schema.",
        "inputSchema": {"json": schema}}}], "toolChoice": {"tool": {"name": "ai_lib_sync_json_response"}}}
    body = encode(ChatRequest(MODEL, [Message.user("hi")], response_format={"type": "json_object"})).body
    assert body["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"] == {"json": {"type": "object"}}


def test_stream_request_uses_converse_stream_and_asks_for_the_event_stream():
    sent = encode(ChatRequest(MODEL, [Message.user("hi")]), stream=True)
    assert (sent.url_path, sent.headers["Accept"]) == (STREAM, "application/vnd.amazon.eventstream")
    assert "stream" not in sent.body


def test_an_empty_message_is_refused():
    with pytest.raises(InvalidRequestError, match="no content"):
        encode(ChatRequest(MODEL, [Message.user("")]))


# --- responses ---------------------------------------------------------------------------


def test_reasoning_max_tokens_and_cache_usage():
    manifest = load_manifest("bedrock", search_dirs())
    body = json.dumps(fixture_json("bedrock/converse_reasoning.json")).encode()
    resp = get_dialect("bedrock_converse").decode_response(body, manifest, MODEL)
    assert (resp.content, resp.thinking, resp.finish_reason) == ("2 + 2 = 4.", "The user asks for 2 + 2. That is 4.", "length")
    usage = resp.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.cached_tokens) == (140, 100, 240, 60)


@pytest.mark.parametrize("reason, expected", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"),
    ("model_context_window_exceeded", "length"), ("malformed_model_output", "other")])
def test_stop_reasons(reason, expected):
    manifest = load_manifest("bedrock", search_dirs())
    body = json.dumps({"output": {"message": {"role": "assistant", "content": [{"text": "x"}]}},
                       "stopReason": reason, "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}})
    assert get_dialect("bedrock_converse").decode_response(body.encode(), manifest, MODEL).finish_reason == expected


# --- streams -----------------------------------------------------------------------------


def test_text_stream_split_at_awkward_boundaries():
    events = decode_stream("bedrock", stream_bytes("stream_text.json"))
    assert kinds(events) == ["content_delta", "content_delta", "usage", "finish"]
    assert text_of(events).endswith("\"Don't Look Back in Anger\" 🎵")
    assert (events[-2].usage.prompt_tokens, events[-2].usage.total_tokens) == (125, 185)
    assert events[-1].finish_reason == "stop"


def test_tool_use_stream():
    events = decode_stream("bedrock", stream_bytes("stream_tool_use.json"))
    assert kinds(events) == ["content_delta", "tool_call_started", "tool_call_delta", "tool_call_delta",
                             "tool_call_ended", "usage", "finish"]
    started, ended = events[1], events[4]
    assert (started.index, started.id, started.name) == (0, "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "top_song")
    assert ended.tool_call.arguments == {"sign": "WZPZ"} and ended.index == 0
    assert events[-1].finish_reason == "tool_calls"


def test_reasoning_stream():
    events = decode_stream("bedrock", stream_bytes("stream_reasoning.json"))
    assert kinds(events) == ["thinking_delta", "thinking_delta", "content_delta", "usage", "finish"]
    assert "".join(e.text for e in events if e.is_thinking_delta) == "The user asks for 2 + 2. That is 4."


def test_stream_ending_after_message_stop_without_metadata_still_finishes():
    data = b"".join(event(k, p) for k, p in fixture_json("bedrock/stream_text.json")["events"][:-1])
    assert kinds(decode_stream("bedrock", data)) == ["content_delta", "content_delta", "finish"]


def test_stream_ending_before_message_stop_is_interrupted():
    data = b"".join(event(k, p) for k, p in fixture_json("bedrock/stream_text.json")["events"][:3])
    with pytest.raises(StreamInterruptedError, match="messageStop"):
        decode_stream("bedrock", data)


@pytest.mark.parametrize("exception_type, kind", [
    ("throttlingException", "rate_limited"), ("modelStreamErrorException", "server_error"),
    ("internalServerException", "server_error"), ("serviceUnavailableException", "overloaded"),
    ("validationException", "invalid_request")])
def test_exception_frames_mid_stream_are_classified(exception_type, kind):
    events = fixture_json("bedrock/stream_text.json")["events"]
    data = b"".join(event(k, p) for k, p in events[:2]) + exception(exception_type, "it went wrong")
    with pytest.raises(AiLibError) as caught:
        decode_stream("bedrock", data)
    assert caught.value.kind == kind and "it went wrong" in str(caught.value)


def test_stream_end_to_end(client, server):
    body = stream_bytes("stream_tool_use.json")
    server.enqueue(Reply(chunks=awkward_chunks(body, (7, 64, 3, 200)),
                         headers={"Content-Type": "application/vnd.amazon.eventstream"}))
    stream = client.chat().user("What is the most popular song on WZPZ?").tools([TOP_SONG]).stream()
    events = list(stream)
    assert (server.last.path, server.last.header("accept")) == (STREAM, "application/vnd.amazon.eventstream")
    assert kinds(events)[-2:] == ["usage", "finish"]
    final = stream.final_response()
    assert final.content == "I'll look up the top song on WZPZ."
    assert [(c.id, c.arguments) for c in final.tool_calls] == [("tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", {"sign": "WZPZ"})]
    assert (final.finish_reason, final.usage.total_tokens, stream.stats.prompt_tokens) == ("tool_calls", 431, 375)


def test_stream_exception_end_to_end_keeps_the_partial_text(client, server):
    events = fixture_json("bedrock/stream_text.json")["events"]
    body = b"".join(event(k, p) for k, p in events[:2]) + exception("throttlingException", "Too many tokens, slow down")
    server.enqueue(Reply(chunks=[body[:50], body[50:]], headers={"Content-Type": "application/vnd.amazon.eventstream"}))
    with pytest.raises(AiLibError) as caught:
        list(client.chat().user("hi").stream())
    assert caught.value.kind == "rate_limited"
    assert caught.value.partial_content == "Here is a list of 3 pop songs"


# --- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("status, error_type, body, kind", fixture_json("bedrock/errors.json")["cases"])
def test_http_errors_are_classified_by_x_amzn_errortype(client, server, status, error_type, body, kind):
    server.enqueue(Reply(status, body, headers={"x-amzn-errortype": error_type, "x-amzn-RequestId": "req-123"}))
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    error = caught.value
    assert (error.kind, error.status_code, error.request_id) == (kind, status, "req-123")
    assert error.code == error_type.split(":")[0]


def test_a_session_token_echoed_in_a_signature_error_is_redacted(client, server):
    message = ("The request signature we calculated does not match.\n\nThe Canonical String for this request "
               "should have been\n'POST\n/model/x/converse\n\nhost:example\nx-amz-security-token:IQoJb3JpZ2luSECRET\n'")
    server.enqueue(Reply(403, {"message": message}, headers={"x-amzn-errortype": "InvalidSignatureException"}))
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    assert caught.value.kind == "authentication"
    assert "IQoJb3JpZ2luSECRET" not in str(caught.value) + caught.value.body + repr(caught.value)


# --- SigV4 -------------------------------------------------------------------------------

requires_botocore = pytest.mark.skipif(importlib.util.find_spec("botocore") is None,
                                       reason="botocore is not installed (pip install 'ai-lib-sync[aws]')")


@pytest.fixture
def aws_keys(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_REGION", "us-west-2")


def resign(sent, base_url: str, token: str | None = None) -> tuple[str, str]:
    """(expected Authorization, canonical request) recomputed with botocore from what the
    server received, at the request's own X-Amz-Date."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    authorization = sent.header("authorization")
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    request = AWSRequest(method=sent.method, url=base_url + sent.path, data=sent.body,
                         headers={name: sent.header(name) for name in signed})
    request.context["timestamp"] = sent.header("x-amz-date")
    auth = SigV4Auth(Credentials(ACCESS_KEY, SECRET_KEY, token), "bedrock", "us-west-2")
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    expected = (f"AWS4-HMAC-SHA256 Credential={auth.scope(request)}, "
                f"SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))}, Signature={signature}")
    return expected, canonical


@requires_botocore
@pytest.mark.parametrize("token", [None, "FwoGZXIvYXdzEXAMPLETOKEN"])
def test_sigv4_signature_is_what_botocore_computes(make_client, server, aws_keys, monkeypatch, caplog, token):
    if token:
        monkeypatch.setenv("AWS_SESSION_TOKEN", token)
    caplog.set_level(logging.DEBUG)  # botocore logs the canonical request, token header included
    server.enqueue(ok("converse_text.json"))
    make_client(MODEL_ID, api_key=None).chat().user("Hello").execute()
    sent = server.last
    date = sent.header("x-amz-date")
    assert sent.header("authorization").startswith(
        f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/{date[:8]}/us-west-2/bedrock/aws4_request, "
        "SignedHeaders=accept;content-type;host;x-amz-date" + (";x-amz-security-token" if token else "") + ", ")
    assert sent.header("x-amz-security-token") == token
    expected, canonical = resign(sent, server.base_url, token)
    assert sent.header("authorization") == expected
    # SigV4 (all services but S3) encodes the path once more: the ':' of the model id is %253A.
    assert canonical.split("\n")[1] == "/model/anthropic.claude-3-5-sonnet-20241022-v2%253A0/converse"
    assert "CanonicalRequest" in caplog.text and SECRET_KEY not in caplog.text
    assert not token or token not in caplog.text


@requires_botocore
def test_signer_matches_botocores_own_bedrock_client_for_the_same_request(monkeypatch):
    """botocore's client serialises and signs a Converse call; our signer, given the same URL,
    headers and body at the same instant, must produce the same Authorization."""
    import botocore.auth
    import botocore.session

    from ai_lib_sync.aws_auth import make_signer

    session = botocore.session.Session()
    boto = session.create_client("bedrock-runtime", region_name="eu-central-1",
                                 aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)
    captured = {}

    class Sent(Exception):
        pass

    def capture(request, **_):
        captured["request"] = request
        raise Sent

    boto.meta.events.register("before-send.bedrock-runtime.Converse", capture)
    with pytest.raises(Sent):
        boto.converse(modelId=MODEL, messages=[{"role": "user", "content": [{"text": "Hello"}]}])
    theirs = captured["request"]
    at = datetime.datetime.strptime(theirs.headers["X-Amz-Date"].decode(), "%Y%m%dT%H%M%SZ")
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda *a, **k: at)

    manifest = load_manifest("bedrock", search_dirs())
    signer = make_signer(manifest, "https://bedrock-runtime.eu-central-1.amazonaws.com",
                         {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY})
    ours = encode(ChatRequest(MODEL, [Message.user("Hello")]))
    assert "https://bedrock-runtime.eu-central-1.amazonaws.com" + ours.url_path == theirs.url
    prepared = Prepared("POST", theirs.url, {"Content-Type": "application/json"}, theirs.body, lambda *a: None)
    signer(prepared)
    assert prepared.headers["Authorization"] == theirs.headers["Authorization"].decode()


@requires_botocore
def test_signing_region_comes_from_the_endpoint_host():
    from ai_lib_sync.aws_auth import make_signer

    manifest = load_manifest("bedrock", search_dirs())
    environ = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_REGION": "us-east-1"}
    signer = make_signer(manifest, "https://bedrock-runtime.ap-south-1.amazonaws.com", environ)
    prepared = Prepared("POST", "https://bedrock-runtime.ap-south-1.amazonaws.com" + CONVERSE,
                        {"Content-Type": "application/json", "Authorization": "stale"}, b"{}", lambda *a: None)
    signer(prepared)
    assert "/ap-south-1/bedrock/aws4_request" in prepared.headers["Authorization"]
    assert list(prepared.headers).count("Authorization") == 1


@pytest.fixture
def no_aws_config(monkeypatch, tmp_path):
    """No shared files and no instance metadata: botocore's chain must find nothing, offline."""
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return tmp_path


@requires_botocore
def test_no_credentials_at_all_is_a_configuration_error(make_client, server, no_aws_config, monkeypatch):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    with pytest.raises(ConfigurationError, match="AWS_BEARER_TOKEN_BEDROCK.*AWS_ACCESS_KEY_ID"):
        make_client(MODEL_ID, api_key=None)
    assert server.requests == []


def test_missing_botocore_names_the_extra(make_client, aws_keys, monkeypatch):
    monkeypatch.setitem(sys.modules, "botocore", None)
    monkeypatch.setitem(sys.modules, "botocore.auth", None)
    with pytest.raises(ConfigurationError, match=r"ai-lib-sync\[aws\]"):
        make_client(MODEL_ID, api_key=None)


@requires_botocore
def test_profile_credentials_and_region(no_aws_config, monkeypatch):
    (no_aws_config / "config").write_text("[profile dev]\nregion = ap-northeast-1\n")
    (no_aws_config / "credentials").write_text(f"[dev]\naws_access_key_id = {ACCESS_KEY}\n"
                                               f"aws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.setenv("AWS_PROFILE", "dev")
    with AiClient(MODEL_ID) as client:
        assert client.base_url == "https://bedrock-runtime.ap-northeast-1.amazonaws.com"
        assert client.binding._signer.region == "ap-northeast-1"


# --- endpoint and region -----------------------------------------------------------------


def test_region_from_environment_and_url_params(bearer, monkeypatch, no_aws_config):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-3")
    with AiClient(MODEL_ID) as client:
        assert client.base_url == "https://bedrock-runtime.eu-west-3.amazonaws.com"
    monkeypatch.setenv("AWS_REGION", "us-east-2")
    with AiClient(MODEL_ID) as client:
        assert client.base_url == "https://bedrock-runtime.us-east-2.amazonaws.com"
    with AiClient(MODEL_ID, url_params={"region": "ca-central-1"}) as client:
        assert client.base_url == "https://bedrock-runtime.ca-central-1.amazonaws.com"


def test_missing_region_is_a_configuration_error(bearer, no_aws_config):
    with pytest.raises(ConfigurationError, match="AWS_REGION"):
        AiClient(MODEL_ID)
