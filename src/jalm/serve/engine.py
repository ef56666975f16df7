"""The model behind the server: one worker thread runs generations one at a time, off the event loop.

Requests queue for the worker (so two generations never fight for the same CPU cores or GPU), while the
event loop keeps answering pages, health checks and other requests. A streaming request receives text
deltas through an asyncio queue fed from the worker thread; when its client goes away, the generation
is cancelled at the next step. The queue is bounded: past `max_pending` requests the server says busy.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from jalm.chat import chat_notice, chat_prompt_ids, chat_stops
from jalm.generate import PROMPT, Completion, Sampling, complete, context_length, encode_prompt


class Busy(Exception):
    """More requests are waiting than the server is configured to queue."""


@dataclass(frozen=True)
class Delta:
    """Sequence `index` of the generation grew by `text`."""

    index: int
    text: str


@dataclass(frozen=True)
class Done:
    """The generation is over; one result per sequence (empty when it was cancelled before it started)."""

    results: list[Completion]


StreamEvent = Delta | Done


class Engine:
    def __init__(self, model, tokenizer, max_pending: int = 32):
        self.model, self.tokenizer = model, tokenizer
        self.context = context_length(model)
        self.chat_notice = chat_notice(tokenizer)  # None when the model has a chat template
        self.chat_stops = chat_stops(tokenizer)
        self.max_pending = max_pending
        self.pending = 0  # queued or running; only touched on the event loop thread
        self.completed = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jalm-generate")
        self._samples: list[str] | None = None
        self._samples_lock: asyncio.Lock | None = None

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    def chat_ids(self, messages: Sequence) -> tuple[list[int], str | None]:
        """Prompt ids of a conversation and the chat notice (see `jalm.chat.chat_prompt_ids`)."""
        return chat_prompt_ids(self.tokenizer, messages)

    async def stream(self, prompt_ids: Sequence[int], sampling: Sampling) -> AsyncIterator[StreamEvent]:
        """Yields a `Delta` each time a sequence grows, then one `Done` with every sequence's result."""
        if self.pending >= self.max_pending:
            raise Busy(f"{self.pending} requests are already waiting; try again shortly")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def on_text(index: int, delta: str) -> None:  # runs on the worker thread
            loop.call_soon_threadsafe(queue.put_nowait, Delta(index, delta))

        def work() -> list[Completion]:
            if cancel.is_set():  # the client left while the request was queued
                return []
            return complete(self.model, self.tokenizer, prompt_ids, sampling, on_text, cancel.is_set)

        self.pending += 1
        future = loop.run_in_executor(self._executor, work)

        def finished(_) -> None:
            self.pending -= 1
            self.completed += 1
            queue.put_nowait(None)  # the end of the deltas

        future.add_done_callback(finished)
        try:
            while (delta := await queue.get()) is not None:
                yield delta
            yield Done(future.result())
        finally:
            cancel.set()  # no-op when finished; stops the worker when the consumer went away

    async def run(self, prompt_ids: Sequence[int], sampling: Sampling) -> list[Completion]:
        results: list[Completion] = []
        async for event in self.stream(prompt_ids, sampling):
            if isinstance(event, Done):
                results = event.results
        return results

    async def samples(self) -> list[str]:
        """The card's sample outputs: LINE's snippet arguments, computed once, on the worker."""
        if self._samples_lock is None:
            self._samples_lock = asyncio.Lock()
        async with self._samples_lock:
            if self._samples is None:
                ids = self.encode(PROMPT)
                length = max(30, len(ids) + 1)
                sampling = Sampling(max_length=length, do_sample=True, num_return_sequences=5, seed=101)
                self._samples = [PROMPT + r.text for r in await self.run(ids, sampling)]
        return self._samples

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
