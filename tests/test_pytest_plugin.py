"""The ``ai_fake`` pytest fixture, run the way users run it: small test files through pytester,
plus direct checks of every family, retries, keys and the plugin's footprint."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import entry_points

import pytest

from ai_lib_sync import AiClient, AiLibError, StreamInterruptedError
from ai_lib_sync.transport import Transport

PLUGIN = "ai_lib_sync.integrations.pytest_plugin"
INSTALLED = any(entry.value == PLUGIN for entry in entry_points(group="pytest11"))
if not INSTALLED:  # a checkout not (re)installed with pip install -e since the entry point came
    pytest_plugins = [PLUGIN]

pytest_plugins = [*globals().get("pytest_plugins", []), "pytester"]


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_user_app=source)
    plugin_args = () if INSTALLED else ("-p", PLUGIN)
    return pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", *plugin_args, *args)


USER_APP = '''
import os
import pytest
from ai_lib_sync import AiClient, RateLimitError

# The app's module-level clients: built at import, before any fixture, with a real-looking key.
APP_KEY = "sk-live-looks-real-0123456789abcdef"
CLIENTS = {"openai": AiClient("openai/gpt-4o-mini", api_key=APP_KEY),
           "anthropic": AiClient("anthropic/claude-3-5-sonnet-20241022", api_key=APP_KEY),
           "gemini": AiClient("gemini/gemini-2.0-flash", api_key=APP_KEY)}
KEY_HEADER = {"openai": "authorization", "anthropic": "x-api-key", "gemini": "x-goog-api-key"}


def ask(family, prompt, stream):
    chat = CLIENTS[family].chat().system("Be brief.").user(prompt)
    if not stream:
        return chat.execute().content
    with chat.stream() as events:
        return [event.text for event in events if event.is_content_delta]


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("family", ["openai", "anthropic", "gemini"])
def test_each_family_answers_in_its_own_wire_format(ai_fake, family, stream):
    ai_fake.reply("Hello there, friend")
    answer = ask(family, "Hi", stream)
    assert answer == (["Hello", " there,", " friend"] if stream else "Hello there, friend")
    request = ai_fake.last
    assert (request.family, request.stream, request.prompt, request.seen.system) == (family, stream, "Hi", "Be brief.")
    body = request.json
    if family == "openai":
        assert request.path == "/v1/chat/completions" and body.get("stream", False) is stream
        assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    elif family == "anthropic":
        assert request.path == "/v1/messages" and request.header("anthropic-version") == "2023-06-01"
        assert body["system"] == "Be brief." and body["messages"][0]["role"] == "user"
    else:
        method = "streamGenerateContent" if stream else "generateContent"
        assert request.path == f"/v1beta/models/gemini-2.0-flash:{method}"
        assert request.query == ({"alt": ["sse"]} if stream else {})
        assert body["contents"] == [{"role": "user", "parts": [{"text": "Hi"}]}]
    # The app's key never reaches the fake: it is masked before it leaves the client.
    assert request.header(KEY_HEADER[family]).endswith("ai-fake-redacted-key")
    assert APP_KEY not in str(request.headers) + repr(ai_fake.requests)


@pytest.mark.parametrize("stream", [False, True])
def test_a_scripted_429_answers_every_retry_and_nobody_sleeps(ai_fake, stream):
    ai_fake.error(429, retry_after=3)
    with pytest.raises(RateLimitError) as caught:
        ask("anthropic", "Hi", stream)
    assert caught.value.retry_after == 3 and caught.value.status_code == 429
    assert len(ai_fake.requests) == 3 and len(ai_fake.calls()) == 1  # max_retries=2: one call, 3 attempts
    assert ai_fake.sleeps == [3, 3]
    assert ai_fake.last.header("x-ai-fake-call") is None  # the call tag is stripped


def test_a_retry_succeeds_only_when_the_test_says_so(ai_fake):
    ai_fake.error(503, times=1).reply("recovered")
    response, stats = CLIENTS["gemini"].chat().user("Hi").execute_with_stats()
    assert (response.content, stats.retries, len(ai_fake.requests)) == ("recovered", 1, 2)


def test_gemini_retry_hint_is_retry_info_in_the_body(ai_fake):
    ai_fake.error("rate_limited", retry_after=7)
    with pytest.raises(RateLimitError) as caught:
        CLIENTS["gemini"].chat().user("Hi").execute()
    assert caught.value.retry_after == 7 and ai_fake.sleeps == [7, 7]


def test_clients_built_during_the_test_need_no_key(ai_fake):
    assert os.environ["OPENAI_BASE_URL"] == ai_fake.url("openai")
    ai_fake.reply("from the env")
    client = AiClient("openai/gpt-4o")
    assert client.chat().user("Hi").execute().content == "from the env"
    assert ai_fake.last.header("authorization") == "Bearer " + os.environ["OPENAI_API_KEY"]


def test_the_environment_is_restored_afterwards():
    assert "OPENAI_BASE_URL" not in os.environ and "ai-fake" not in os.environ.get("OPENAI_API_KEY", "")
'''


def test_user_tests_pass_through_the_plugin(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = run(pytester, USER_APP, "-q")
    result.assert_outcomes(passed=12)
    assert "OPENAI_BASE_URL" not in os.environ


def test_unscripted_and_unused_answers_fail_the_test(pytester: pytest.Pytester):
    result = run(pytester, '''
from ai_lib_sync import AiClient

def test_unscripted(ai_fake):
    try:
        AiClient("openai/gpt-4o").chat().user("Hi").execute()
    except Exception as error:
        assert error.status_code == 418

def test_unused(ai_fake):
    ai_fake.reply("nobody asks")

def test_relaxed(ai_fake):
    ai_fake.strict = False
    ai_fake.reply("nobody asks")
''', "-q")
    result.assert_outcomes(passed=3, errors=2)
    result.stdout.fnmatch_lines(["*no reply scripted for this openai request*",
                                 "*scripted but never requested: reply 'nobody asks'*"])


def test_a_failing_test_shows_no_key_and_no_extra_teardown_error(pytester: pytest.Pytester):
    result = run(pytester, '''
from ai_lib_sync import AiClient

client = AiClient("anthropic/claude-3-5-sonnet-20241022", api_key="sk-ant-real-0123456789abcdef")

def test_fails_on_headers(ai_fake):
    ai_fake.reply("hi").reply("unused")
    client.chat().user("Hi").execute()
    assert ai_fake.last.headers == {}
''', "-vv")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "'x-api-key': 'ai-fake-redacted-key'" in output  # the whole dict is printed
    assert "sk-ant-real-0123456789abcdef" not in output
    assert "never requested" not in output  # verify() stays quiet when the test failed anyway


# --- direct checks, with the fixture in this process ----------------------------------------

FAMILY_MODELS = {"openai": "openai/gpt-4o", "anthropic": "anthropic/claude-3-5-sonnet-20241022",
                 "gemini": "gemini/gemini-2.0-flash", "cohere": "cohere/command-r-plus",
                 "ollama": "ollama/llama3.2", "bedrock": "bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0"}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather in a city.",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}


@pytest.mark.parametrize("stream", [False, True], ids=["execute", "stream"])
@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_every_family_text_and_tool_calls(ai_fake, family: str, stream: bool):
    client = AiClient(FAMILY_MODELS[family])
    ai_fake.reply("It is sunny", thinking="Let me look" if family != "openai" else None, usage=(12, 4))
    ai_fake.tool_call("get_weather", {"city": "Paris"}, family=family)

    def run_chat(chat):
        if not stream:
            return chat.execute()
        with chat.stream() as events:
            for _ in events:
                pass
        return events.final_response()

    first = run_chat(client.chat().user("Weather?"))
    assert (first.content, first.finish_reason, first.usage.total_tokens) == ("It is sunny", "stop", 16)
    assert first.thinking == (None if family == "openai" else "Let me look")
    second = run_chat(client.chat().user("Weather in Paris?").tools([WEATHER]))
    (call,) = second.tool_calls
    assert (call.name, call.arguments, second.finish_reason) == ("get_weather", {"city": "Paris"}, "tool_calls")
    assert [r.family for r in ai_fake.requests] == [family, family]
    assert ai_fake.last.seen.tools == [("get_weather", "Weather in a city.",
                                        WEATHER["function"]["parameters"])]
    assert ai_fake.last.stream is stream and ai_fake.last.prompt == "Weather in Paris?"


@pytest.mark.parametrize("family", list(FAMILY_MODELS))
def test_a_stream_that_breaks_raises_with_the_partial_text(ai_fake, family: str):
    client = AiClient(FAMILY_MODELS[family], max_retries=0)
    ai_fake.reply(["Partial", " answer"], fail="overloaded")
    received = []
    with pytest.raises(AiLibError) as caught:
        for event in client.chat().user("Hi").stream():
            received.append(event.text if event.is_content_delta else event.kind)
    assert received == ["Partial", " answer"]
    assert caught.value.partial_content == "Partial answer"
    if family == "cohere":  # documents no error frame: the connection breaks off
        assert isinstance(caught.value, StreamInterruptedError)


def test_family_scripts_route_a_fallback(ai_fake):
    client = AiClient("openai/gpt-4o", fallbacks=["anthropic/claude-3-5-sonnet-20241022"])
    ai_fake.reply("from claude", family="anthropic").error(503, family="openai")
    response = client.chat().user("Hi").execute()
    assert (response.content, response.provider) == ("from claude", "anthropic")
    assert [r.family for r in ai_fake.requests] == ["openai"] * 3 + ["anthropic"]


def test_module_level_client_in_a_thread_pool(ai_fake):
    client = AiClient("cohere/command-r-plus", api_key="co-real-key-0123456789")
    ai_fake.reply("same", times=8)
    results = client.batch([client.chat().user(f"q{n}") for n in range(8)], max_workers=4)
    assert [r.content for r in results] == ["same"] * 8
    assert sorted(r.prompt for r in ai_fake.requests) == sorted(f"q{n}" for n in range(8))
    assert len({r.call for r in ai_fake.requests}) == 8
    assert all("co-real-key" not in r.header("authorization") for r in ai_fake.requests)


def test_bad_scripts_fail_before_any_request(ai_fake):
    with pytest.raises(ValueError, match="unknown error kind"):
        ai_fake.error("rate_limit")
    with pytest.raises(ValueError, match="no fake for"):
        ai_fake.reply("hi", family="openia")
    with pytest.raises(ValueError, match="times"):
        ai_fake.reply("hi", times=0)
    assert ai_fake.requests == []


def test_after_the_fixture_everything_is_undone():
    """Runs after the tests above: the transport is the original again."""
    assert Transport._send.__qualname__ == "Transport._send"
    assert Transport.with_retries.__qualname__ == "Transport.with_retries"


def test_loading_the_plugin_imports_nothing_heavy():
    code = ("import sys, ai_lib_sync.integrations.pytest_plugin; "
            "print(sorted(m for m in sys.modules if m.startswith(('ai_lib_sync', 'requests', 'django'))))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                       check=True, timeout=60).stdout.replace("'", '"'))
    assert loaded == ["ai_lib_sync", "ai_lib_sync.integrations", PLUGIN]


def test_package_fakes_carry_the_documented_error_bodies():
    """The package's copies of the documented errors agree with tests/fixtures (each with its _source)."""
    from ai_lib_sync.fakes import fake_class
    from tests.helpers import fixture_json

    gemini = fixture_json("gemini/errors.json")
    assert fake_class("gemini").errors["rate_limited"].body == gemini["rate_limited"]["body"]
    assert fake_class("gemini").errors["authentication"].body == gemini["api_key_invalid"]["body"]
    for family in ("cohere", "ollama"):
        first: dict = {}
        for case in fixture_json(f"{family}/errors.json")["cases"]:
            first.setdefault(case["kind"], (case["status"], case["body"]))
        assert {kind: (c.status, c.body) for kind, c in fake_class(family).errors.items()} == first
    bedrock = {kind: (status, error_type, body)
               for status, error_type, body, kind in reversed(fixture_json("bedrock/errors.json")["cases"])}
    for kind, case in fake_class("bedrock").errors.items():
        assert (case.status, case.headers["x-amzn-errortype"], case.body) == bedrock[kind]
