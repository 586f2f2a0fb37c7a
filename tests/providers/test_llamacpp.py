"""The llamacpp manifest against real llama-server captures (tests/fixtures/llamacpp/).

Each capture starts with the exact curl request, then the raw HTTP response. The tests rebuild
the same request with the builder and compare bodies, then replay the captured response through
a loopback server (streams split at awkward byte boundaries) and check the parsing.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass

import pytest

from ai_lib_sync.errors import InvalidRequestError
from ai_lib_sync.testing import Reply
from tests.helpers import awkward_chunks, decode_stream, fixture_bytes, kinds, text_of

MODEL = "llamacpp/gemma-3-270m"
WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
PREFILL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "'


@dataclass
class Capture:
    request: dict  # the curl body (or {"raw": text} when it is not JSON)
    path: str
    status: int
    headers: dict[str, str]
    body: bytes

    def reply(self, awkward: bool = True) -> Reply:
        headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "server")}
        if self.headers.get("Content-Type") == "text/event-stream":
            chunks = awkward_chunks(self.body) if awkward else [self.body]
            return Reply(self.status, chunks=chunks, headers=headers)
        return Reply(self.status, body=self.body, headers=headers)


def capture(name: str) -> Capture:
    raw = fixture_bytes(f"llamacpp/llama-server-{name}.txt")
    curl_line = next(line for line in raw.decode("utf-8").splitlines() if line.startswith("$ curl"))
    words = shlex.split(curl_line[2:])
    sent = words[words.index("-d") + 1]
    try:
        request = json.loads(sent)
    except ValueError:  # the invalid-JSON capture sends a broken body on purpose
        request = {"raw": sent}
    url = next(word for word in words if word.startswith("http://"))
    head, _, body = raw[raw.index(b"HTTP/1.1 "):].partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines if ": " in line)
    return Capture(request, "/" + url.split("/", 3)[3], int(status_line.split()[1]), headers, body)


def send(server, make_client, cap: Capture, build, stream: bool = False):
    server.enqueue(cap.reply())
    client = make_client(MODEL, prefix="/v1", api_key=None)
    builder = build(client.chat())
    if stream:
        with builder.stream() as events_stream:
            events = list(events_stream)
            result = (events, events_stream.final_response())
    else:
        result = builder.execute()
    assert server.last.path == cap.path == "/v1/chat/completions"
    assert server.last.header("authorization") is None
    assert server.last.json == cap.request
    return result


def test_non_streamed_chat(server, make_client) -> None:
    cap = capture("nonstream")
    response = send(server, make_client, cap,
                    lambda chat: chat.system("You are terse.").user("Say hello.").max_tokens(24).temperature(0))
    assert response.content.startswith("You are a model.\n\nSay hello.")
    assert response.finish_reason == "length"
    usage = response.usage
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens, usage.cached_tokens) == (17, 24, 41, 1)
    assert response.id == "chatcmpl-uoZjQU6eprjUx1Wy7MSW0UEBfuRMHeQ3"


def test_sampling_parameters_and_seed(server, make_client) -> None:
    cap = capture("temperature-seed")
    response = send(server, make_client, cap,
                    lambda chat: chat.user("Tell me a fact.").max_tokens(16).temperature(1.2).top_p(0.9)
                    .param("seed", 42))
    assert response.usage.total_tokens == 30


def test_stream_with_include_usage(server, make_client) -> None:
    cap = capture("stream-include-usage")
    events, final = send(server, make_client, cap,
                         lambda chat: chat.user("Count from 1 to 5.").max_tokens(12).temperature(0), stream=True)
    assert text_of(events) == "1.0.0.0.0.0."
    assert kinds(events)[-2:] == ["usage", "finish"]
    assert events[-1].finish_reason == "length"
    assert (final.usage.prompt_tokens, final.usage.completion_tokens, final.usage.total_tokens) == (17, 12, 29)


def test_stream_without_stream_options_has_no_usage() -> None:
    events = decode_stream("llamacpp", capture("stream-no-stream-options").body)
    assert text_of(events) == "1.0.0."
    assert "usage" not in kinds(events)
    assert kinds(events)[-1] == "finish" and events[-1].finish_reason == "length"


def test_stop_sequence(server, make_client) -> None:
    cap = capture("stop-sequence")
    response = send(server, make_client, cap,
                    lambda chat: chat.user("List three colors, one per line.").max_tokens(40).temperature(0).stop("\n"))
    assert response.content == "List three colors, one per line. wnętr"
    assert response.finish_reason == "stop"


def test_streamed_stop_sequence_split_mid_character() -> None:
    body = capture("stream-stop-sequence").body
    position = body.index("ę".encode()) + 1  # inside the two bytes of "ę"
    events = decode_stream("llamacpp", [body[:position], body[position:]])
    assert events == decode_stream("llamacpp", body)  # awkward split by default
    assert text_of(events) == "List three colors, one per line. wnętr"
    assert events[-1].finish_reason == "stop"


def _tool_call_builder(chat, stop: bool = False, parallel: bool = True):
    chat = (chat.user("What is the weather in Paris?").assistant(PREFILL).max_tokens(30).temperature(0)
            .tools([WEATHER_TOOL]).tool_choice("required"))
    if stop:
        chat = chat.stop(["</tool_call>"])
    if not parallel:
        chat = chat.param("parallel_tool_calls", False)
    return chat


def test_tool_calls_non_streamed_with_truncated_arguments(server, make_client) -> None:
    cap = capture("tool-call-nonstream")
    response = send(server, make_client, cap, lambda chat: _tool_call_builder(chat, parallel=False))
    first, second = response.tool_calls
    assert (first.id, first.name, first.arguments) == ("U4NJyLur1Ghs9yC17tYrrh8oy276GqXE", "get_weather", {"city": "Paris"})
    assert second.name == "get_weather" and second.arguments == {}
    assert second.arguments_raw == '{"city'  # the truncated text is kept
    assert response.finish_reason == "length"
    assert response.content == ""


def test_tool_calls_streamed_with_truncated_arguments(server, make_client) -> None:
    cap = capture("tool-call-stream")
    events, final = send(server, make_client, cap, lambda chat: _tool_call_builder(chat, parallel=False), stream=True)
    started = [e for e in events if e.is_tool_call_started]
    ended = [e for e in events if e.is_tool_call_ended]
    assert [(e.index, e.id) for e in started] == [(0, "qwRquZYNu51uNe7y0dSinDDKUhZUOqox"),
                                                 (1, "rw5BNrfDetaKGbF1qxUpLMIPcMrwP48V")]
    assert [e.index for e in ended] == [0, 1]
    assert ended[0].tool_call.arguments == {"city": "Paris"}
    assert ended[1].tool_call.arguments == {} and ended[1].tool_call.arguments_raw == '{"city'
    fragments = "".join(e.arguments_fragment for e in events if e.is_tool_call_delta and e.index == 0)
    assert fragments == '{"city": "Paris"\n}'
    assert kinds(events)[-2:] == ["usage", "finish"] and events[-1].finish_reason == "length"
    assert final.tool_calls == [e.tool_call for e in ended]
    assert final.usage.total_tokens == 231


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_cut_by_a_stop_sequence(stream: bool, server, make_client) -> None:
    cap = capture("tool-call-stop-stream" if stream else "tool-call-stop-nonstream")
    result = send(server, make_client, cap, lambda chat: _tool_call_builder(chat, stop=True), stream=stream)
    calls = result[1].tool_calls if stream else result.tool_calls
    assert [call.arguments for call in calls] == [{"city": "Paris"}, {"city": "Paris"}]
    assert len({call.id for call in calls}) == 2


def test_response_format_json_object(server, make_client) -> None:
    cap = capture("json-response-format")
    response = send(server, make_client, cap,
                    lambda chat: chat.user("Give a JSON object with a name field.").max_tokens(40).temperature(0)
                    .response_format("json_object"))
    assert response.content.startswith('{\n    "name": "my_model"')
    assert response.finish_reason == "length"


@pytest.mark.parametrize(("name", "message"), [
    ("error-bad-request", "'messages' is required"),
    ("error-invalid-json", "parse error at line 1, column 11"),
])
def test_error_bodies(name: str, message: str, server, make_client) -> None:
    cap = capture(name)
    server.enqueue(cap.reply())
    client = make_client(MODEL, prefix="/v1")
    with pytest.raises(InvalidRequestError) as caught:
        client.chat().user("x").execute()
    assert caught.value.kind == "invalid_request" and caught.value.status_code == 400
    assert message in caught.value.message


def test_in_stream_error_frame_with_numeric_code_is_classified() -> None:
    frame = b'data: {"error":{"code":400,"message":"context too long","type":"invalid_request_error"}}\n\n'
    body = capture("stream-include-usage").body
    first = body[:body.index(b"\n\n") + 2]
    with pytest.raises(InvalidRequestError):
        decode_stream("llamacpp", first + frame)


def test_key_is_sent_when_given(server, make_client) -> None:
    server.enqueue(capture("nonstream").reply())
    make_client(MODEL, prefix="/v1", api_key="local-secret").chat().user("x").execute()
    assert server.last.header("authorization") == "Bearer local-secret"
