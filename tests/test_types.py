"""Unified types: parsing OpenAI-style input, images, tool calls, events, serialisation."""

from __future__ import annotations

import base64
import json

import pytest

from ai_lib_sync import InvalidRequestError, Message, MessageRole, ToolCall
from ai_lib_sync.types import (
    ChatResponse,
    ContentDelta,
    FinishEvent,
    ImagePart,
    TextPart,
    Tool,
    Usage,
)


def test_openai_dict_with_parts_tool_calls_and_unknown_fields_round_trips():
    message = Message.from_any({
        "role": "assistant", "content": None, "name": "bot", "cache_control": {"type": "ephemeral"},
        "tool_calls": [{"id": "call_1", "type": "function",
                        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}],
    })
    assert message.role is MessageRole.ASSISTANT
    assert message.tool_calls == [ToolCall("call_1", "get_weather", {"city": "Paris"}, "{\"city\": \"Paris\"}")]
    assert message.name == "bot"
    assert message.extra == {"cache_control": {"type": "ephemeral"}}


def test_developer_role_is_a_system_message_and_unknown_roles_are_refused():
    assert Message.from_any({"role": "developer", "content": "be brief"}).role is MessageRole.SYSTEM
    with pytest.raises(InvalidRequestError, match="role 'robot'"):
        Message.from_any({"role": "robot", "content": "x"})


def test_image_sources_are_normalised(tmp_path):
    png = tmp_path / "cat.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    from_file = ImagePart.from_any(str(png))
    assert from_file.media_type == "image/png"
    assert base64.b64decode(from_file.data) == png.read_bytes()
    assert from_file.data_url.startswith("data:image/png;base64,")
    from_url = ImagePart.from_any("https://example.com/a.jpg")
    assert (from_url.url, from_url.data, from_url.media_type) == ("https://example.com/a.jpg", None, "image/jpeg")
    from_data = ImagePart.from_any("data:image/webp;base64,AAAA")
    assert (from_data.media_type, from_data.data) == ("image/webp", "AAAA")
    with pytest.raises(InvalidRequestError, match="neither"):
        ImagePart.from_any(str(tmp_path / "missing.png"))


def test_user_message_with_images_and_openai_image_parts(tmp_path):
    message = Message.user("what is this?", images=["https://example.com/a.png"])
    assert isinstance(message.content[0], TextPart) and isinstance(message.content[1], ImagePart)
    parsed = Message.from_any({"role": "user", "content": [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,QUJD", "detail": "low"}}]})
    assert parsed.text == "look"
    assert parsed.images[0].data == "QUJD" and parsed.images[0].detail == "low"


def test_tool_call_arguments_survive_truncated_json():
    call = ToolCall.from_raw("id", "f", "{\"city")
    assert call.arguments == {} and call.arguments_raw == "{\"city"
    assert ToolCall.from_raw("id", "f", {"a": 1}).arguments_json() == "{\"a\": 1}"
    assert ToolCall.from_raw("id", "f", "[1, 2]").arguments == {"value": [1, 2]}


def test_tool_from_openai_dict_and_bad_tool():
    tool = Tool.from_any({"type": "function", "function": {"name": "f", "description": "d",
                                                           "parameters": {"type": "object"}}})
    assert tool.to_openai() == {"type": "function", "function": {"name": "f", "description": "d",
                                                                 "parameters": {"type": "object"}}}
    with pytest.raises(InvalidRequestError):
        Tool.from_any({"type": "function", "function": {}})


def test_events_narrow_and_refuse_the_wrong_kind():
    event = ContentDelta("hi")
    assert event.is_content_delta and not event.is_finish
    assert event.as_content_delta.text == "hi"
    with pytest.raises(TypeError, match="content_delta event, not finish"):
        event.as_finish  # noqa: B018
    assert FinishEvent("stop") == FinishEvent("stop") and FinishEvent("stop") != FinishEvent("length")


def test_response_serialises_through_dataclasses_json():
    response = ChatResponse(content="héllo", tool_calls=[ToolCall("c", "f", {"x": 1})],
                            usage=Usage.of(3, 4), model="m", provider="p")
    data = response.to_dict()
    assert data["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7,
                             "reasoning_tokens": None, "cached_tokens": None}
    assert data["tool_calls"][0]["arguments"] == {"x": 1}
    assert json.loads(response.to_json())["content"] == "héllo"
