"""Provider Batch APIs end to end against loopback fakes written from each provider's docs
(tests/batchfakes): what goes on the wire (paths, headers, multipart, JSONL lines, bodies),
splitting past per-batch limits, results by custom id in input order, typed item errors,
cancel, and the journal: resubmission and crash + resume with exactly one provider batch."""

from __future__ import annotations

import json

import pytest

from ai_lib_sync import AiClient, APITimeoutError, ConfigurationError, InvalidRequestError
from ai_lib_sync.batch import BatchJob
from ai_lib_sync.batch.journal import Journal
from ai_lib_sync.batch.provider_jobs import BatchItemCancelled, BatchItemExpired, BatchItemMissing
from ai_lib_sync.types import ChatResponse
from tests.batchfakes import AnthropicBatchFake, GeminiBatchFake, OpenAIBatchFake
from tests.batchfakes.base import multipart

PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
WEATHER = {"type": "function", "function": {"name": "weather", "description": "the weather",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
MODELS = {"openai": "openai/gpt-4o-mini", "groq": "groq/llama-3.1-8b-instant", "together":
          "together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "mistral": "mistral/mistral-small-latest",
          "anthropic": "anthropic/claude-3-5-haiku-latest", "gemini": "gemini/gemini-2.5-flash"}


class Crash(BaseException):
    """Stands for the process dying at a chosen point."""


def client_for(provider: str, fake) -> AiClient:
    return AiClient(MODELS[provider], api_key="test-key", base_url=fake.base_url, max_retries=1, timeout=10)


def mixed_requests(client: AiClient) -> list:
    return [
        client.chat().user("first").tools([WEATHER]).stop(["END"]).max_tokens(50),
        "second",
        {"messages": [{"role": "user", "content": "third"}], "temperature": 0.2, "custom_id": "mine-3"},
        [{"role": "user", "content": "fourth"}],
        client.chat().user("fifth", images=[PNG]).json_schema({"type": "object", "properties": {}}),
    ]


def direct_body(client: AiClient, builder) -> dict:
    """What a direct (non-batch) call would send for ``builder``."""
    binding = client.binding
    return binding.dialect.encode_request(binding.shape(builder.build()), binding.manifest, binding.model, False).body


def wait(job: BatchJob) -> BatchJob:
    return job.wait(poll_interval=0.01, timeout=5)


# --- OpenAI ---------------------------------------------------------------------------------


def test_openai_end_to_end_request_side_and_results(tmp_path):
    with OpenAIBatchFake(polls=2, fail=("item-1",)) as fake, client_for("openai", fake) as client:
        requests = mixed_requests(client)
        job = client.submit_batch(requests, journal=tmp_path / "jobs.sqlite")
        assert job.id.startswith("bj_") and len(job.provider_batch_ids) == 1
        assert job.status == "validating"
        upload, create = fake.requests[0], fake.requests[1]
        assert (upload.method, upload.path) == ("POST", "/v1/files")
        assert upload.header("authorization") == "Bearer test-key"
        parts = multipart(upload)
        assert parts["purpose"] == (None, b"batch")
        filename, content = parts["file"]
        assert filename == f"ai-lib-sync-{job.id}-0.jsonl"
        lines = [json.loads(line) for line in content.decode().splitlines()]
        assert [line["custom_id"] for line in lines] == [f"item-{i}" for i in range(5)]
        assert all(line["method"] == "POST" and line["url"] == "/v1/chat/completions" for line in lines)
        # The very body a direct call sends: tools, stop, images and schemas survive.
        assert lines[0]["body"] == direct_body(client, requests[0])
        assert lines[0]["body"]["tools"][0]["function"]["name"] == "weather"
        assert lines[0]["body"]["stop"] == ["END"] and lines[0]["body"]["max_completion_tokens"] == 50
        assert lines[4]["body"]["messages"][0]["content"][1]["image_url"]["url"] == PNG
        assert lines[4]["body"]["response_format"]["type"] == "json_schema"
        assert lines[2]["body"]["temperature"] == 0.2 and "custom_id" not in lines[2]["body"]
        assert (create.method, create.path) == ("POST", "/v1/batches")
        assert create.json == {"input_file_id": next(iter(fake.files)), "endpoint": "/v1/chat/completions",
                               "completion_window": "24h", "metadata": {"ai_lib_sync_job": f"{job.id}-0"}}

        seen = []
        wait(job).wait(poll_interval=0.01, progress=seen.append)
        assert job.status == "completed" and seen == [job]
        assert job.counts.total == 5 and job.counts.succeeded == 4 and job.counts.failed == 1
        results = job.results()
        assert [r.content if isinstance(r, ChatResponse) else r.kind for r in results] == [
            "echo: first", "invalid_request", "echo: third", "echo: fourth", "echo: fifth"]
        assert results[1].status_code == 400 and results[1].provider == "openai"
        assert results[2].custom_id == "mine-3"
        downloads = [r.path for r in fake.requests if r.path.endswith("/content")]
        assert len(downloads) == 2  # output file and error file
        stats = job.stats[0]
        assert (stats.prompt_tokens, stats.completion_tokens) == (1, 3) and job.stats[1] is None
        price = client.manifest.price("gpt-4o-mini")
        assert price is not None and price.batch_discount == 0.5
        full = client.manifest.usage_cost_usd("gpt-4o-mini", results[0].usage)
        assert stats.cost_usd == pytest.approx(full * 0.5)
        assert job.cost_usd == pytest.approx(sum(s.cost_usd for s in job.stats if s))
        assert fake.violations == []


def test_split_past_request_and_byte_limits_keeps_input_order(tmp_path):
    with OpenAIBatchFake(max_requests=2) as fake, client_for("openai", fake) as client:
        prompts = [f"p{i}" for i in range(5)]
        job = client.submit_batch(prompts, max_requests=2)
        assert len(job.provider_batch_ids) == 3 and fake.created == 3
        sizes = [len(batch["lines"]) for batch in fake.batches.values()]
        assert sizes == [2, 2, 1]
        assert [r.content for r in wait(job).results()] == [f"echo: p{i}" for i in range(5)]
        one_line = len(fake.files[next(iter(fake.files))][1]) // 2
        job = client.submit_batch([f"q{i}" for i in range(4)], max_bytes=one_line + 10)
        assert len(job.provider_batch_ids) == 4
        assert [r.content for r in wait(job).results()] == [f"echo: q{i}" for i in range(4)]
        assert fake.violations == []


def test_same_requests_same_journal_returns_the_same_job(tmp_path):
    path = tmp_path / "jobs.sqlite"
    with OpenAIBatchFake() as fake, client_for("openai", fake) as client:
        first = client.submit_batch(["a", "b"], journal=path)
        again = client.submit_batch(["a", "b"], journal=path)
        assert again.id == first.id and again.provider_batch_ids == first.provider_batch_ids
        assert (fake.uploads, fake.created) == (1, 1)
        other = client.submit_batch(["a", "c"], journal=path)
        assert other.id != first.id and fake.created == 2
        with pytest.raises(ConfigurationError, match="job_id"):
            BatchJob.resume(journal=path, client=client)
        resumed = BatchJob.resume(journal=path, client=client, job_id=first.id)
        assert [r.content for r in wait(resumed).results()] == ["echo: a", "echo: b"]


@pytest.mark.parametrize("point", ["chunk_uploaded", "chunk_creating", "chunk_created"])
def test_openai_crash_at_each_step_then_resume_creates_one_batch(tmp_path, monkeypatch, point):
    path = tmp_path / "jobs.sqlite"
    with OpenAIBatchFake() as fake:
        with client_for("openai", fake) as client:
            original = getattr(Journal, point)

            def crash(self, *args, **kwargs):
                raise Crash(point)

            monkeypatch.setattr(Journal, point, crash)
            with pytest.raises(Crash):
                client.submit_batch(["a", "b", "c"], journal=path)
            monkeypatch.setattr(Journal, point, original)
        assert fake.created == (1 if point == "chunk_created" else 0)
        with client_for("openai", fake) as client:  # a new process, in effect
            job = BatchJob.resume(journal=path, client=client)
            assert fake.created == 1
            again = client.submit_batch(["a", "b", "c"], journal=path)
            assert again.id == job.id and fake.created == 1
            assert [r.content for r in wait(job).results()] == ["echo: a", "echo: b", "echo: c"]
        # A crash before the upload was journalled costs a second (unbilled) upload, never a batch.
        assert fake.uploads == (2 if point == "chunk_uploaded" else 1)
        assert fake.violations == []


def test_lost_create_answer_is_found_not_created_again(tmp_path):
    with OpenAIBatchFake(lose_creates=1) as fake, client_for("openai", fake) as client:
        job = client.submit_batch(["a"], journal=tmp_path / "j.sqlite")
        assert fake.creates == 1 and fake.created == 1  # found by its input file, not retried
        assert [r.content for r in wait(job).results()] == ["echo: a"]


def test_cancel_and_item_errors_are_typed(tmp_path):
    with OpenAIBatchFake(polls=50) as fake, client_for("openai", fake) as client:
        job = client.submit_batch(["a", "b"])
        with pytest.raises(InvalidRequestError, match="wait"):
            job.results()
        with pytest.raises(APITimeoutError):
            job.wait(poll_interval=0.01, timeout=0.05)
        job.cancel()
        cancel = fake.requests[-1]
        assert (cancel.method, cancel.path) == ("POST", f"/v1/batches/{job.provider_batch_ids[0]}/cancel")
        assert job.status == "cancelling"
        results = wait(job).results()
        assert job.status == "cancelled"
        assert all(isinstance(r, BatchItemCancelled) and r.kind == "connection" for r in results)
    with OpenAIBatchFake(expire=("item-0",)) as fake, client_for("openai", fake) as client:
        results = wait(client.submit_batch(["a", "b"])).results()
        assert isinstance(results[0], BatchItemExpired) and results[0].kind == "timeout"
        assert results[0].code == "batch_expired" and results[1].content == "echo: b"
    with OpenAIBatchFake(outcome="failed") as fake, client_for("openai", fake) as client:
        job = wait(client.submit_batch(["a"]))
        assert job.status == "failed"
        [error] = job.results()
        assert error.kind == "invalid_request" and "not parseable" in error.message


def test_openai_completed_batch_without_a_line_reports_it_missing():
    with OpenAIBatchFake() as fake, client_for("openai", fake) as client:
        job = wait(client.submit_batch(["a", "b"]))
        batch = next(iter(fake.batches.values()))
        name, content = fake.files[batch["output"]]
        fake.files[batch["output"]] = (name, content.splitlines(keepends=True)[0])
        results = job.results()
        assert results[0].content == "echo: a" and isinstance(results[1], BatchItemMissing)


def test_bad_input_fails_before_any_network_io(tmp_path):
    with OpenAIBatchFake() as fake, client_for("openai", fake) as client:
        with pytest.raises(InvalidRequestError, match="request 1"):
            client.submit_batch(["ok", {"messages": []}], journal=tmp_path / "j.sqlite")
        with pytest.raises(InvalidRequestError, match="stream"):
            client.submit_batch([{"messages": [{"role": "user", "content": "x"}], "stream": True}])
        with pytest.raises(InvalidRequestError, match="empty"):
            client.submit_batch([])
        with AiClient("anthropic/claude-3-5-haiku-latest", api_key="k") as other:
            with pytest.raises(InvalidRequestError, match="one provider"):
                client.submit_batch(["x", other.chat().user("y")])
        with pytest.raises(ConfigurationError, match="max_requests"):
            client.submit_batch(["x"], max_requests=0)
        assert fake.requests == []
        assert Journal(tmp_path / "j.sqlite").jobs() == []  # nothing half-written either
    with AiClient("deepseek/deepseek-chat", api_key="k", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(ConfigurationError, match="no provider Batch API"):
            client.submit_batch(["x"])


@pytest.mark.parametrize("flavour", ["groq", "together", "mistral"])
def test_openai_compatible_batch_apis(flavour, tmp_path):
    with OpenAIBatchFake(flavour, polls=2, fail=("item-1",)) as fake, client_for(flavour, fake) as client:
        job = client.submit_batch(["a", "b", "c"], journal=tmp_path / "j.sqlite")
        upload, create = fake.requests[0], fake.requests[1]
        lines = [json.loads(line) for line in multipart(upload)["file"][1].decode().splitlines()]
        if flavour == "groq":
            assert upload.path == "/openai/v1/files" and create.path == "/openai/v1/batches"
            assert set(lines[0]) == {"custom_id", "method", "url", "body"}
        elif flavour == "together":
            assert upload.path == "/v1/files/upload" and multipart(upload)["purpose"][1] == b"batch-api"
            assert set(lines[0]) == {"custom_id", "body"} and "metadata" not in create.json
        else:
            assert create.path == "/v1/batch/jobs" and create.json["model"] == "mistral-small-latest"
            assert set(lines[0]) == {"custom_id", "body"} and "model" not in lines[0]["body"]
        results = wait(job).results()
        assert [getattr(r, "content", None) for r in results] == ["echo: a", None, "echo: c"]
        assert results[1].kind == "invalid_request" and job.counts.failed == 1
        assert fake.violations == []


def test_openai_kill_9_mid_submission_then_resume(tmp_path):
    """A real ``kill -9`` right after the provider created the batch, before the journal knew."""
    import os
    import signal
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "jobs.sqlite"
    with OpenAIBatchFake() as fake:
        script = textwrap.dedent(f"""
            import os, signal
            from ai_lib_sync import AiClient
            from ai_lib_sync.batch.journal import Journal
            Journal.chunk_created = lambda self, *a: os.kill(os.getpid(), signal.SIGKILL)
            client = AiClient("openai/gpt-4o-mini", api_key="test-key", base_url={fake.base_url!r})
            client.submit_batch(["a", "b"], journal={str(path)!r})
        """)
        child = subprocess.run([sys.executable, "-c", script], cwd=os.getcwd(), timeout=60, capture_output=True)
        assert child.returncode == -signal.SIGKILL, child.stderr.decode()[-2000:]
        assert fake.created == 1
        with client_for("openai", fake) as client:
            job = BatchJob.resume(journal=path, client=client)
            assert fake.created == 1
            assert [r.content for r in wait(job).results()] == ["echo: a", "echo: b"]


# --- Anthropic --------------------------------------------------------------------------------


def test_anthropic_end_to_end(tmp_path):
    with AnthropicBatchFake(polls=2, fail=("item-1",), expire=("item-3",)) as fake, \
            client_for("anthropic", fake) as client:
        requests = mixed_requests(client)
        job = client.submit_batch(requests, journal=tmp_path / "j.sqlite")
        create = fake.requests[0]
        assert (create.method, create.path) == ("POST", "/v1/messages/batches")
        assert create.header("x-api-key") == "test-key" and create.header("anthropic-version")
        items = create.json["requests"]
        assert [item["custom_id"] for item in items] == [f"item-{i}" for i in range(5)]
        assert items[0]["params"] == direct_body(client, requests[0])
        assert items[0]["params"]["stop_sequences"] == ["END"]
        assert items[0]["params"]["tools"][0]["name"] == "weather"
        assert items[4]["params"]["messages"][0]["content"][1]["type"] == "image"
        assert job.status == "in_progress"
        results = wait(job).results()
        assert fake.requests[-1].path == f"/v1/messages/batches/{job.provider_batch_ids[0]}/results"
        assert job.status == "expired"  # one request ran out of time
        assert results[0].content == "echo: first" and results[2].custom_id == "mine-3"
        assert results[1].kind == "invalid_request" and "max_tokens" in results[1].message
        assert isinstance(results[3], BatchItemExpired)
        assert job.counts.succeeded == 3 and job.counts.failed == 2
        full = client.manifest.usage_cost_usd("claude-3-5-haiku-latest", results[0].usage)
        if full is not None:
            assert job.stats[0].cost_usd == pytest.approx(full * 0.5)
        assert fake.violations == []


def test_anthropic_crash_after_create_then_resume(tmp_path, monkeypatch):
    path = tmp_path / "j.sqlite"
    with AnthropicBatchFake() as fake:
        with client_for("anthropic", fake) as client:
            monkeypatch.setattr(Journal, "chunk_created", lambda self, *a: (_ for _ in ()).throw(Crash()))
            with pytest.raises(Crash):
                client.submit_batch(["a", "b"], journal=path, max_requests=1)
            monkeypatch.undo()
        assert fake.created == 1
        with client_for("anthropic", fake) as client:
            job = BatchJob.resume(journal=path, client=client)
            # the first chunk was adopted (1 request, made after the attempt); the second created
            assert fake.created == 2 and len(set(job.provider_batch_ids)) == 2
            assert [r.content for r in wait(job).results()] == ["echo: a", "echo: b"]


def test_anthropic_lost_create_and_cancel():
    with AnthropicBatchFake(lose_creates=1, polls=50) as fake, client_for("anthropic", fake) as client:
        job = client.submit_batch(["a", "b"])
        assert fake.creates == 1 and fake.created == 1
        job.cancel()
        assert fake.requests[-1].path.endswith("/cancel") and job.status == "cancelling"
        results = wait(job).results()
        assert job.status == "cancelled" and all(isinstance(r, BatchItemCancelled) for r in results)


# --- Gemini -----------------------------------------------------------------------------------


def test_gemini_end_to_end_split_by_bytes(tmp_path):
    with GeminiBatchFake(polls=2, fail=("item-2",)) as fake, client_for("gemini", fake) as client:
        requests = mixed_requests(client)
        job = client.submit_batch(requests, journal=tmp_path / "j.sqlite", max_bytes=600)
        creates = [r for r in fake.requests if r.method == "POST"]
        assert len(creates) == len(job.provider_batch_ids) > 1
        first = creates[0]
        assert first.path == "/v1beta/models/gemini-2.5-flash:batchGenerateContent"
        assert first.header("x-goog-api-key") == "test-key" or first.query.get("key") == ["test-key"]
        batch = first.json["batch"]
        assert batch["display_name"] == f"{job.id}-0"
        item = batch["input_config"]["requests"]["requests"][0]
        assert item == {"request": direct_body(client, requests[0]), "metadata": {"key": "item-0"}}
        assert item["request"]["generationConfig"]["stopSequences"] == ["END"]
        assert all(len(r.body) <= 600 + 200 for r in creates)
        results = wait(job).results()
        assert [getattr(r, "content", None) for r in results] == [
            "echo: first", "echo: second", None, "echo: fourth", "echo: fifth"]
        assert results[2].kind == "invalid_request" and results[2].custom_id == "mine-3"
        assert fake.violations == []


def test_gemini_without_echoed_metadata_uses_the_documented_order():
    with GeminiBatchFake(echo_metadata=False) as fake, client_for("gemini", fake) as client:
        job = wait(client.submit_batch(["a", "b", "c"]))
        assert [r.content for r in job.results()] == ["echo: a", "echo: b", "echo: c"]


def test_gemini_crash_after_create_then_resume_and_cancel(tmp_path, monkeypatch):
    path = tmp_path / "j.sqlite"
    with GeminiBatchFake(polls=50) as fake:
        with client_for("gemini", fake) as client:
            monkeypatch.setattr(Journal, "chunk_created", lambda self, *a: (_ for _ in ()).throw(Crash()))
            with pytest.raises(Crash):
                client.submit_batch(["a", "b"], journal=path)
            monkeypatch.undo()
        with client_for("gemini", fake) as client:
            job = BatchJob.resume(journal=path, client=client)
            assert fake.created == 1 and fake.requests[-1].path == "/v1beta/batches"
            job.cancel()
            assert fake.requests[-1].path == f"/v1beta/{job.provider_batch_ids[0]}:cancel"
            results = wait(job).results()
            assert job.status == "cancelled" and all(isinstance(r, BatchItemCancelled) for r in results)


def test_the_cli_submits_through_the_batch_api_and_resumes_without_paying_twice(tmp_path, monkeypatch, capsys):
    from ai_lib_sync.cli import main

    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps("first") + "\n" + "{not json\n" + json.dumps({"prompt": "third", "custom_id": "c"})
                      + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    with OpenAIBatchFake() as fake:
        monkeypatch.setenv("OPENAI_API_KEY", "test-key")
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        args = ["batch", str(source), "-o", str(out), "-m", "openai/gpt-4o-mini", "--provider-batch",
                "--poll-interval", "0.01"]
        assert main(args) == 1  # the malformed line is a failed row; the others went through
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert [row["line"] for row in rows] == [1, 2, 3]
        assert rows[0]["content"] == "echo: first" and rows[2]["custom_id"] == "c"
        assert rows[1]["ok"] is False and rows[1]["error"]["kind"] == "invalid_request"
        assert "(batch price)" in capsys.readouterr().err
        assert main([*args, "--resume"]) == 1
        assert (fake.uploads, fake.created) == (1, 1)  # the journal found the job: nothing paid twice
        assert fake.violations == []
