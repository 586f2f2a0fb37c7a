"""One client shared by many threads: every answer matches its own question, and the pool
stays within its size."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from ai_lib_sync.testing import openai_echo


def test_one_client_is_safe_to_share_between_threads(server, make_client):
    server.handler = openai_echo
    client = make_client("openai/gpt-4o", pool_maxsize=8)

    def ask(number: int) -> tuple[int, str, str]:
        if number % 3 == 0:
            stream = client.chat().user(f"question {number}").stream()
            return number, stream.text(), stream.final_response().content
        response = client.chat().user(f"question {number}").execute()
        return number, response.content, response.content

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(ask, range(160)))
    for number, first, second in results:
        assert first == second == f"Echo: question {number}"
    assert len(server.requests) == 160
    assert server.connections <= 8
