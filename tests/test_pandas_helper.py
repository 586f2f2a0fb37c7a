"""chat_column: a DataFrame column of prompts in, result columns out, over the executor."""

from __future__ import annotations

import pytest

from ai_lib_sync.errors import ConfigurationError
from ai_lib_sync.testing import Reply, openai_echo

pandas = pytest.importorskip("pandas", reason="the pandas extra is not installed")

from ai_lib_sync.integrations.pandas import chat_column  # noqa: E402


def echo_or_refuse(request):
    if "bad" in request.json["messages"][-1]["content"]:
        return Reply(400, {"error": {"message": "bad prompt", "type": "invalid_request_error"}})
    return openai_echo(request)


def test_prompts_in_result_columns_out(server, make_client):
    server.handler = echo_or_refuse
    client = make_client("openai/gpt-4o-mini", prefix="/v1")
    df = pandas.DataFrame({"prompt": ["one", "bad two", "three"], "other": [1, 2, 3]}, index=[7, 8, 9])
    out = chat_column(df, "prompt", client=client, max_workers=2, request_options={"temperature": 0})
    assert list(df.columns) == ["prompt", "other"]  # the input is left alone
    assert list(out.index) == [7, 8, 9] and list(out["other"]) == [1, 2, 3]
    assert out["content"].isna().tolist() == [False, True, False]  # missing: None or NaN by pandas version
    assert out.loc[[7, 9], "content"].tolist() == ["Echo: one", "Echo: three"]
    assert out["error"].isna().tolist() == [True, False, True] and out.loc[8, "error"] == "invalid_request"
    assert "bad prompt" in out.loc[8, "error_message"]
    assert out.loc[7, "prompt_tokens"] == 1 and out.loc[7, "total_tokens"] == 3
    assert out.loc[7, "cost_usd"] > 0 and pandas.isna(out.loc[8, "cost_usd"])
    assert "custom_id" not in out.columns  # no cell carried one
    assert sorted(r.json["messages"][0]["content"] for r in server.requests) == ["bad two", "one", "three"]
    assert all(r.json["temperature"] == 0 and r.path == "/v1/chat/completions" for r in server.requests)


def test_prefix_and_clashes(server, make_client):
    server.handler = openai_echo
    client = make_client("openai/gpt-4o-mini", prefix="/v1")
    df = pandas.DataFrame({"prompt": ["a"], "content": ["mine"]})
    with pytest.raises(ConfigurationError, match="prefix"):
        chat_column(df, "prompt", client=client)
    out = chat_column(df, "prompt", client=client, prefix="llm_")
    assert out["content"].tolist() == ["mine"] and out["llm_content"].tolist() == ["Echo: a"]


def test_bad_input_is_refused_before_any_call(server, make_client):
    client = make_client("openai/gpt-4o-mini", prefix="/v1")
    df = pandas.DataFrame({"prompt": ["a"]})
    with pytest.raises(ConfigurationError, match="no column"):
        chat_column(df, "missing", client=client)
    with pytest.raises(ConfigurationError, match="request_options"):
        chat_column(df, "prompt", client=client, temperature=0)
    with pytest.raises(ConfigurationError, match="model"):
        chat_column(df, "prompt")
    with pytest.raises(ConfigurationError, match="DataFrame"):
        chat_column([1, 2], "prompt", model="openai/gpt-4o-mini")
    assert server.requests == []
