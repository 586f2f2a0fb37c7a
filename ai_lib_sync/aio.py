"""The async face of the library, over threads: ``await`` works, a bounded pool does the I/O.

```python
from ai_lib_sync.aio import AiClient, Message
client = await AiClient.create("openai/gpt-4o")
response = await client.chat().user("Hello").execute()
async for event in client.chat().user("Tell me a story").stream(): ...
```

Why threads and not a second, async HTTP stack: one implementation of every provider, and the
blocking client is already thread-safe. Each client owns a pool of ``max_threads`` threads
(32 by default), so ``asyncio.gather`` of a thousand calls queues them instead of starting a
thousand threads. A stream runs on one pool thread that feeds a bounded buffer: when the
consumer stops reading, the thread waits, and the HTTP stream with it. Cancelling the awaiting
task, or leaving ``async for`` early, aborts the HTTP call (``transport.CallScope``) and gives
the thread back. This is the only module that imports asyncio.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from . import client as _sync
from .transport import CallScope
from .types import CallStats, ChatResponse, Message, MessageRole, StreamEvent

__all__ = ["AiClient", "AsyncChatBuilder", "AsyncChatStream", "Message", "MessageRole"]

T = TypeVar("T")
_EVENT, _DONE, _ERROR = "event", "done", "error"


class AiClient:
    """An async client for one model id; the same options as the blocking ``AiClient`` plus
    ``max_threads`` (the size of the thread pool this client owns)."""

    def __init__(self, model: str, *, max_threads: int = 32, stream_buffer: int = 64, **kwargs: Any) -> None:
        if max_threads < 1 or stream_buffer < 1:
            from .errors import ConfigurationError

            raise ConfigurationError("max_threads and stream_buffer must be >= 1")
        self.sync = _sync.AiClient(model, **kwargs)
        self.sync.transport.ensure_pool_size(max_threads)
        self.max_threads = max_threads
        self.stream_buffer = stream_buffer
        self._pool = ThreadPoolExecutor(max_threads, thread_name_prefix="ai-lib-aio")

    @classmethod
    async def create(cls, model: str, **kwargs: Any) -> AiClient:
        """The seed's spelling: ``client = await AiClient.create("openai/gpt-4o")``."""
        return cls(model, **kwargs)

    def __repr__(self) -> str:
        return f"aio.AiClient({self.sync.model_id!r}, base_url={self.sync.base_url!r})"

    @property
    def provider(self) -> str:
        return self.sync.provider

    @property
    def model(self) -> str:
        return self.sync.model

    @property
    def model_id(self) -> str:
        return self.sync.model_id

    def chat(self) -> AsyncChatBuilder:
        return AsyncChatBuilder(self, self.sync.chat())

    async def run(self, function: Callable[[], T]) -> T:
        """Run a blocking call on this client's pool; cancelling the awaiting task aborts its
        HTTP call and frees the thread."""
        scope = CallScope()

        def call() -> T:
            with scope:
                return function()

        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        try:
            return await future
        except asyncio.CancelledError:
            scope.abort()  # a queued call is dropped by the cancelled future; a running one aborts
            raise

    async def close(self) -> None:
        """Release connections and join the pool's threads."""
        await asyncio.get_running_loop().run_in_executor(None, self.close_sync)

    def close_sync(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.sync.close()

    aclose = close

    async def __aenter__(self) -> AiClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class AsyncChatBuilder:
    """The blocking builder's methods (``system``, ``user``, ``temperature``, ``tools`` ...)
    chain as usual; ``execute``, ``execute_with_stats`` are coroutines and ``stream`` returns an
    async iterator."""

    def __init__(self, client: AiClient, builder: _sync.ChatBuilder) -> None:
        self._client = client
        self._builder = builder

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._builder, name)
        if not callable(method):
            return method

        def chained(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            return self if result is self._builder else result

        chained.__name__ = name
        chained.__doc__ = method.__doc__
        return chained

    def build(self) -> Any:
        return self._builder.build()

    async def execute(self) -> ChatResponse:
        request = self._builder.build()
        return (await self._client.run(lambda: self._client.sync.execute_request(request)))[0]

    async def execute_with_stats(self) -> tuple[ChatResponse, CallStats]:
        request = self._builder.build()
        return await self._client.run(lambda: self._client.sync.execute_request(request))

    async def execute_parsed(self, cls: type, repair_retries: int = 1) -> Any:
        """The blocking builder's ``execute_parsed`` (re-asks included) on the pool."""
        return await self._client.run(lambda: self._builder.execute_parsed(cls, repair_retries))

    def stream(self) -> AsyncChatStream:
        return AsyncChatStream(self._client, self._builder.build())

    execute_stream = stream


class AsyncChatStream:
    """Async iterator of unified events; also an async context manager.

    The blocking stream runs on one pool thread, which may run ahead of the consumer by at most
    ``stream_buffer`` events. ``aclose()``, cancelling the consuming task, or dropping the
    object (leaving ``async for`` early) stops the thread and closes the HTTP stream.
    After exhaustion ``final_response()`` and ``stats`` are available, as on the blocking stream.
    """

    def __init__(self, client: AiClient, request: Any) -> None:
        self._client = client
        self._request = request
        self._scope = CallScope()
        self._stop = threading.Event()
        self._credits = threading.Semaphore(client.stream_buffer)
        self._queue: asyncio.Queue[tuple[str, Any]] | None = None
        self._worker: Future | None = None
        self._holder: list[Any] = [None]  # the blocking ChatStream, once the pump opened it
        self._finished = False
        self.stats: CallStats | None = None

    def __aiter__(self) -> AsyncChatStream:
        return self

    async def __anext__(self) -> StreamEvent:
        if self._finished:
            raise StopAsyncIteration
        if self._queue is None:
            self._start()
        assert self._queue is not None
        try:
            kind, value = await self._queue.get()
        except BaseException:  # cancelled while waiting
            self._shutdown()
            raise
        if kind == _EVENT:
            self._credits.release()
            return value
        self._finished = True
        if kind == _ERROR:
            raise value
        self.stats = self._holder[0].stats
        raise StopAsyncIteration

    def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._queue = queue = asyncio.Queue()
        # The pump must not reference ``self``: dropping the stream object is what stops it.
        client, request, holder = self._client, self._request, self._holder
        scope, stop, credits = self._scope, self._stop, self._credits

        def post(kind: str, value: Any) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
            except RuntimeError:  # the loop is closed; nobody is listening
                stop.set()

        def pump() -> None:
            with scope:
                try:
                    stream = holder[0] = client.sync.stream_request(request)
                    try:
                        for event in stream:
                            credits.acquire()  # backpressure: at most stream_buffer events ahead
                            if stop.is_set():
                                return
                            post(_EVENT, event)
                    finally:
                        stream.close()
                except BaseException as error:  # handed to the consumer
                    if not stop.is_set():
                        post(_ERROR, error)
                    return
                post(_DONE, None)

        self._worker = client._pool.submit(pump)

    def _shutdown(self) -> None:
        """Stop the pump thread: wake it if it waits for buffer room, abort its HTTP read.
        Thread-safe (``__del__`` may run anywhere)."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._finished = True
        self._credits.release(self._client.stream_buffer + 1)
        self._scope.abort()
        if self._worker is not None:
            self._worker.cancel()  # a pump still queued for a thread never starts

    async def aclose(self) -> None:
        self._shutdown()

    def __del__(self) -> None:
        if not self._finished:
            self._shutdown()

    async def __aenter__(self) -> AsyncChatStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._shutdown()

    def final_response(self) -> ChatResponse:
        if self._holder[0] is None or not self._finished:
            from .errors import InvalidRequestError

            raise InvalidRequestError("final_response() is available once the stream is exhausted")
        return self._holder[0].final_response()

    async def text(self) -> str:
        """Consume the stream and return the text (convenience)."""
        async for _ in self:
            pass
        return self.final_response().content
