"""Error classification of documented error bodies, end to end through a loopback server.

Each case: the provider, the HTTP status and body its docs show, and the kind the manifest rules
(then the shared rules, then the status) must give. Quota or billing exhaustion is
``quota_exhausted`` whatever the status (429, 402, 403, 400, even 200 with an in-body status).
"""

from __future__ import annotations

import pytest

from ai_lib_sync.errors import ERROR_CLASSES, AiLibError
from ai_lib_sync.testing import Reply
from tests.helpers import fixture_json

from .table import BY_ID

SECRET = "sk-live-5ecret-abcdef0123456789"

OPENAI_401 = {"error": {"message": f"Incorrect API key provided: {SECRET}. You can find your API key at "
                                   "https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error", "param": None, "code": "invalid_api_key"}}
RATE_LIMIT_429 = {"error": {"message": "Rate limit reached for model `llama-3.3-70b-versatile` on requests per minute "
                                       "(RPM): Limit 30, Used 30, Requested 1. Please try again in 2s.",
                            "type": "requests", "code": "rate_limit_exceeded"}}
QUOTA_429 = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                       "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
CONTEXT_400 = {"error": {"message": "This model's maximum context length is 131072 tokens. However, you requested "
                                    "140000 tokens. Please reduce the length of the messages.",
                         "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
VLLM_CONTEXT_400 = {"object": "error", "message": "This model's maximum context length is 4096 tokens. However, you "
                    "requested 5000 tokens (4000 in the messages, 1000 in the completion).",
                    "type": "BadRequestError", "param": None, "code": 400}

CASES = [
    # (provider, status, body, kind)
    ("together", 401, OPENAI_401, "authentication"),
    ("groq", 429, RATE_LIMIT_429, "rate_limited"),
    ("groq", 413, "groq/error_413.json", "context_length"),
    ("groq", 498, {"error": {"message": "Flex tier capacity exceeded", "type": "capacity"}}, "overloaded"),
    ("fireworks", 429, QUOTA_429, "quota_exhausted"),
    ("azure", 429, "azure/error_429.json", "rate_limited"),
    ("azure", 429, QUOTA_429, "quota_exhausted"),
    ("azure", 400, "azure/error_content_filter.json", "content_filter"),
    ("azure", 400, CONTEXT_400, "context_length"),
    ("deepseek", 402, "deepseek/error_402.json", "quota_exhausted"),
    ("deepseek", 503, {"error": {"message": "Server overloaded", "type": "service_unavailable"}}, "overloaded"),
    ("deepseek", 422, {"error": {"message": "Invalid max_tokens value", "type": "invalid_request_error"}},
     "invalid_request"),
    ("openrouter", 402, "openrouter/error_402.json", "quota_exhausted"),
    ("openrouter", 403, "openrouter/error_403_moderation.json", "content_filter"),
    ("openrouter", 503, {"error": {"code": 503, "message": "No endpoints found matching your data policy"}},
     "overloaded"),
    ("zhipu", 429, "zhipu/error_1113.json", "quota_exhausted"),
    ("zhipu", 400, "zhipu/error_1301.json", "content_filter"),
    ("zhipu", 429, {"error": {"code": "1302", "message": "您当前使用该API的并发数过高"}}, "rate_limited"),
    ("moonshot", 429, "moonshot/error_quota.json", "quota_exhausted"),
    ("moonshot", 429, {"error": {"message": "Your account org-x request reached max request: 3",
                                 "type": "rate_limit_reached_error"}}, "rate_limited"),
    ("moonshot", 400, {"error": {"message": "Invalid request: Your request exceeded model token limit: 8192",
                                 "type": "invalid_request_error"}}, "context_length"),
    ("doubao", 403, "doubao/error_overdue.json", "quota_exhausted"),
    ("doubao", 429, {"error": {"code": "RateLimitExceeded.EndpointRPMExceeded", "type": "TooManyRequests",
                               "message": "The Requests Per Minute (RPM) limit of the associated endpoint has been exceeded."}},
     "rate_limited"),
    ("doubao", 400, {"error": {"code": "InputTextSensitiveContentDetected", "type": "BadRequest",
                               "message": "The request failed because the input text may contain sensitive information."}},
     "content_filter"),
    ("dashscope", 400, "dashscope/error_arrearage.json", "quota_exhausted"),
    ("dashscope", 400, {"error": {"code": "data_inspection_failed", "type": "data_inspection_failed",
                                  "message": "Input data may contain inappropriate content."}}, "content_filter"),
    ("minimax", 200, "minimax/error_1008.json", "quota_exhausted"),
    ("mistral", 422, "mistral/error_422.json", "invalid_request"),
    ("mistral", 401, {"message": "Unauthorized", "request_id": "abc"}, "authentication"),
    ("xai", 429, "xai/error_credits.json", "quota_exhausted"),
    ("vllm", 400, VLLM_CONTEXT_400, "context_length"),
    ("perplexity", 500, {"error": {"message": "Internal server error", "type": "internal_server_error", "code": 500}},
     "server_error"),
    # Hugging Face router: monthly credits used up (https://huggingface.co/docs/inference-providers/pricing).
    ("huggingface", 402, {"error": "You have exceeded your monthly included credits for Inference Providers. "
                                   "Subscribe to PRO to get 20x more monthly included credits."}, "quota_exhausted"),
    ("github", 429, {"error": {"code": "RateLimitReached", "message": "Rate limit of 15 per 60s exceeded for "
                               "UserByModelByMinute. Please wait 42 seconds before retrying."}}, "rate_limited"),
    ("github", 401, {"error": {"code": "unauthorized", "message": "Bad credentials"}}, "authentication"),
    # Novita (https://novita.ai/docs/api-reference/basic-error-code): balance and key errors come as 403.
    ("novita", 403, {"error": {"code": "NOT_ENOUGH_BALANCE", "message": "Insufficient balance"}}, "quota_exhausted"),
    ("novita", 403, {"code": 403, "reason": "NOT_ENOUGH_BALANCE", "message": "not enough balance"}, "quota_exhausted"),
    ("novita", 403, {"error": {"code": "INVALID_API_KEY", "message": "API Key validation failed"}}, "authentication"),
    ("novita", 403, {"error": {"code": "model_access_denied", "message": "model access denied"}}, "permission"),
    ("novita", 503, {"error": {"message": "service unavailable"}}, "overloaded"),
    ("hyperbolic", 429, {"detail": "Too Many Requests"}, "rate_limited"),
    ("nebius", 429, {"detail": "Rate limit exceeded"}, "rate_limited"),
    ("hunyuan", 401, {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                "code": "invalid_api_key"}}, "authentication"),
    ("stepfun", 429, {"error": {"message": "request rate exceeded", "type": "request_rate_limit_exceeded"}},
     "rate_limited"),
    ("qianfan", 429, {"error": {"code": "rpm_rate_limit_exceeded", "message": "Rate limit reached for RPM",
                                "type": "rate_limit_exceeded"}}, "rate_limited"),
    ("qianfan", 400, {"error": {"code": "malformed_json", "message": "Invalid Argument",
                                "type": "invalid_request_error"}}, "invalid_request"),
    ("vercel", 401, {"error": {"message": "Invalid API key", "type": "authentication_error"}}, "authentication"),
]


@pytest.mark.parametrize(("provider", "status", "body", "kind"), CASES,
                         ids=[f"{c[0]}-{c[1]}-{c[3]}" for c in CASES])
def test_documented_error_bodies_are_classified(provider: str, status: int, body, kind: str,
                                                server, make_client) -> None:
    payload = fixture_json(body) if isinstance(body, str) else body
    server.enqueue(Reply(status, payload))
    expect = BY_ID[provider]
    client = make_client(f"{provider}/{expect.model}", prefix=expect.prefix, api_key=SECRET)
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    error = caught.value
    assert error.kind == kind
    assert isinstance(error, ERROR_CLASSES[kind])
    assert error.provider == provider
    if status >= 400:
        assert error.status_code == status
    assert error.retryable is (kind in ("rate_limited", "overloaded", "server_error"))
    for text in (str(error), repr(error), error.body or "", error.message):
        assert SECRET not in text
    assert len(server.requests) == 1  # max_retries=0, and nothing is retried after a refusal


def test_rate_limit_carries_retry_after(server, make_client) -> None:
    server.enqueue(Reply(429, RATE_LIMIT_429, headers={"retry-after": "2"}))
    client = make_client("groq/llama-3.3-70b-versatile", prefix="/openai/v1")
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    assert caught.value.kind == "rate_limited" and caught.value.retry_after == 2.0


def test_quota_429_is_not_retried_but_rate_limit_is(server, make_client) -> None:
    server.enqueue(Reply(429, QUOTA_429), Reply(429, RATE_LIMIT_429, headers={"retry-after": "0"}),
                   Reply(200, fixture_json("groq/chat.json")))
    client = make_client("groq/llama-3.3-70b-versatile", prefix="/openai/v1", max_retries=2)
    with pytest.raises(AiLibError) as caught:
        client.chat().user("hi").execute()
    assert caught.value.kind == "quota_exhausted" and len(server.requests) == 1
    response, stats = client.chat().user("hi").execute_with_stats()
    assert response.content == "héllo 世界" and stats.retries == 1 and len(server.requests) == 3
