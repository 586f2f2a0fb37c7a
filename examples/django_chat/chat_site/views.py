"""The page, the server-sent events it reads, and the same answer as one JSON object."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from ai_lib_sync import AiClient, AiLibError
from ai_lib_sync.integrations.django import stream_response
from ai_lib_sync.sse import summary

# One client per process, shared by every request thread (it is thread-safe).
client = AiClient(settings.CHAT_MODEL)


def _question(request: HttpRequest) -> str | None:
    return (request.GET.get("q") or "").strip() or None


def _no_question() -> JsonResponse:
    return JsonResponse({"error": {"kind": "invalid_request", "message": "ask something with ?q=..."}},
                        status=400)


def index(request: HttpRequest) -> HttpResponse:
    return render(request, "index.html", {"stream_url": reverse("chat_stream")})


def chat_stream(request: HttpRequest) -> HttpResponse:
    q = _question(request)
    if q is None:
        return _no_question()
    return stream_response(client.chat().user(q).stream())


def chat(request: HttpRequest) -> JsonResponse:
    q = _question(request)
    if q is None:
        return _no_question()
    try:
        response, stats = client.chat().user(q).execute_with_stats()
    except AiLibError as error:
        return JsonResponse({"error": {"kind": error.kind, "message": error.message}}, status=502)
    return JsonResponse({"content": response.content, **summary(response, stats)})
