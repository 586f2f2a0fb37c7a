"""The seed page's Python snippets (../shared/seed/chat-completions.txt), in blocking form
(``await`` removed), run unchanged against a loopback server with only OPENAI_API_KEY and
OPENAI_BASE_URL set, and print what the page promises."""

from __future__ import annotations


def test_hello_world(seed_env, capsys):
    from ai_lib_sync import AiClient

    client = AiClient.create("openai/gpt-4o")
    response = client.chat() \
        .user("Hello, world!") \
        .execute()
    print(response.content)
    assert capsys.readouterr().out == "Echo: Hello, world!\n"
    request = seed_env.last
    assert request.path == "/v1/chat/completions"
    assert request.header("authorization") == "Bearer sk-test-seed"
    assert request.json == {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello, world!"}]}


def test_system_prompt(seed_env):
    from ai_lib_sync import AiClient

    client = AiClient.create("openai/gpt-4o")
    client.chat() \
        .system("You are a helpful coding assistant.") \
        .user("Explain closures") \
        .execute()
    assert seed_env.last.json["messages"] == [
        {"role": "system", "content": "You are a helpful coding assistant."},
        {"role": "user", "content": "Explain closures"}]


def test_conversation_history(seed_env):
    from ai_lib_sync import AiClient, Message

    client = AiClient.create("openai/gpt-4o")
    messages = [
        Message.system("You are a tutor."),
        Message.user("What is recursion?"),
        Message.assistant("Recursion is when a function calls itself..."),
        Message.user("Can you show an example?"),
    ]
    response = client.chat().messages(messages).execute()
    assert response.content == "Echo: Can you show an example?"
    assert [m["role"] for m in seed_env.last.json["messages"]] == ["system", "user", "assistant", "user"]


def test_parameters(seed_env):
    from ai_lib_sync import AiClient

    client = AiClient.create("openai/gpt-4o")
    client.chat() \
        .user("Write a poem") \
        .temperature(0.9) \
        .max_tokens(200) \
        .top_p(0.95) \
        .execute()
    body = seed_env.last.json
    # OpenAI's reference deprecates max_tokens: the same .max_tokens(200) goes out as max_completion_tokens.
    assert (body["temperature"], body["max_completion_tokens"], body["top_p"]) == (0.9, 200, 0.95)


def test_streaming(seed_env, capsys):
    from ai_lib_sync import AiClient

    client = AiClient.create("openai/gpt-4o")
    for event in client.chat() \
            .user("Tell me a story") \
            .stream():
        if event.is_content_delta:
            print(event.as_content_delta.text, end="", flush=True)
    assert capsys.readouterr().out == "Echo: Tell me a story"
    assert seed_env.last.json["stream"] is True


def test_usage_stats(seed_env, capsys):
    from ai_lib_sync import AiClient

    client = AiClient.create("openai/gpt-4o")
    response, stats = client.chat() \
        .user("Hello") \
        .execute_with_stats()
    print(f"Tokens: {stats.total_tokens}")
    print(f"Latency: {stats.latency_ms}ms")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Tokens: 3"  # echo server: 1 prompt word + "Echo: Hello" (2 words)
    assert out[1].startswith("Latency: ") and out[1].endswith("ms") and float(out[1][9:-2]) > 0
    assert stats.prompt_tokens == 1 and stats.completion_tokens == 2
