"""The model behind the server: one model thread decodes every running request together, off the event loop.

Requests queue for the model thread, which owns the model (so generations never fight for the same cores or
GPU) while the event loop keeps answering pages, health checks and other requests. Between two decoding
steps the thread lets queued requests join the batch (each is prefilled alone, then decoded with the others,
up to `max_batch` sequences at once) and drops the finished ones: continuous batching
(`jalm.generate.batched`). Each request keeps its own sampling settings, seed and stop rules, and its output
does not depend on the others in the batch.

A streaming request receives text deltas through an asyncio queue fed from the model thread; when its client
goes away, its rows leave the batch at the next step. The queue is bounded: past `max_pending` requests
(queued or running) the server says busy. With `max_batch=1` (or a model the batched decoder does not
support) requests run one at a time through `complete()` (`model.generate`), as before batching.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from jalm.chat import chat_notice, chat_prompt_ids, chat_stops
from jalm.generate import PROMPT, Completion, Sampling, complete, context_length, encode_prompt
from jalm.generate.batched import BatchDecoder, Job, unsupported

log = logging.getLogger("jalm.serve")
DEFAULT_MAX_BATCH = 16


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


class _Request(Job):
    """A job plus how to hand its end back to the event loop."""

    def __init__(self, prompt_ids, sampling, on_text, cancelled, on_done: Callable[[Future], None]):
        super().__init__(prompt_ids, sampling, on_text, cancelled)
        self.future: Future = Future()
        self.future.add_done_callback(on_done)


class Engine:
    def __init__(self, model, tokenizer, max_pending: int = 32, max_batch: int = DEFAULT_MAX_BATCH):
        self.model, self.tokenizer = model, tokenizer
        self.context = context_length(model)
        self.chat_notice = chat_notice(tokenizer)  # None when the model has a chat template
        self.chat_stops = chat_stops(tokenizer)
        self.max_pending = max_pending
        self.max_batch = max(1, max_batch)
        self.pending = 0  # queued or running; only touched on the event loop thread
        self.completed = 0
        reason = unsupported(model) if self.max_batch > 1 else "--max-batch 1"
        if reason is not None and self.max_batch > 1:
            log.warning("generating one request at a time: cannot batch %s", reason)
        self.decoder = BatchDecoder(model, tokenizer) if reason is None else None
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._waiting: deque[_Request] = deque()  # taken from the inbox, not yet admitted (batch full)
        self._thread = threading.Thread(target=self._loop, name="jalm-generate", daemon=True)
        self._thread.start()
        self._samples: list[str] | None = None
        self._samples_lock: asyncio.Lock | None = None

    @property
    def batching(self) -> bool:
        return self.decoder is not None

    @property
    def running(self) -> int:
        """Sequences in the batch now (read from any thread; a snapshot)."""
        return self.decoder.rows if self.decoder is not None else 0

    def encode(self, prompt: str) -> list[int]:
        return encode_prompt(self.tokenizer, prompt)

    def chat_ids(self, messages: Sequence) -> tuple[list[int], str | None]:
        """Prompt ids of a conversation and the chat notice (see `jalm.chat.chat_prompt_ids`)."""
        return chat_prompt_ids(self.tokenizer, messages)

    def submit(self, fn: Callable[[], object]) -> Future:
        """Run `fn` on the model thread between two decoding steps (it has the model to itself meanwhile)."""
        future: Future = Future()
        self._inbox.put((fn, future))
        return future

    async def stream(
        self, prompt_ids: Sequence[int], sampling: Sampling, deltas: bool = True
    ) -> AsyncIterator[StreamEvent]:
        """Yields a `Delta` each time a sequence grows (unless `deltas` is False), then one `Done` with every
        sequence's result."""
        if self.pending >= self.max_pending:
            raise Busy(f"{self.pending} requests are already waiting; try again shortly")
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def on_text(index: int, delta: str) -> None:  # runs on the model thread
            loop.call_soon_threadsafe(events.put_nowait, Delta(index, delta))

        def on_done(_: Future) -> None:  # runs on the model thread
            loop.call_soon_threadsafe(finished)

        def finished() -> None:
            self.pending -= 1
            self.completed += 1
            events.put_nowait(None)  # the end of the deltas

        # A whole-response request needs no deltas: no event-loop wake-up per token.
        request = _Request(prompt_ids, sampling, on_text if deltas else None, cancel.is_set, on_done)
        self.pending += 1
        self._inbox.put(request)
        try:
            while (delta := await events.get()) is not None:
                yield delta
            yield Done(request.future.result())
        finally:
            cancel.set()  # no-op when finished; frees the request's rows when the consumer went away

    async def run(self, prompt_ids: Sequence[int], sampling: Sampling) -> list[Completion]:
        results: list[Completion] = []
        async for event in self.stream(prompt_ids, sampling, deltas=False):
            if isinstance(event, Done):
                results = event.results
        return results

    async def samples(self) -> list[str]:
        """The card's sample outputs: LINE's snippet arguments, computed once, on the model thread."""
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
        self._inbox.put(None)

    # ---- the model thread ----------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            idle = not self._waiting and (self.decoder is None or not self.decoder.active)
            try:
                item = self._inbox.get(block=idle)
            except queue.Empty:
                item = False  # nothing new: go on decoding
            while item is not False:
                if item is None:  # close()
                    self._stop()
                    return
                if isinstance(item, tuple):  # submit(fn)
                    _settle(item[1], item[0])
                else:
                    self._waiting.append(item)
                try:
                    item = self._inbox.get_nowait()
                except queue.Empty:
                    item = False
            self._admit()
            if self.decoder is not None and self.decoder.active:
                self._step()

    def _admit(self) -> None:
        """Start waiting requests while the batch has room (a request larger than the batch runs alone)."""
        while self._waiting:
            request = self._waiting[0]
            if request.cancelled():  # the client left while the request was queued
                self._waiting.popleft().future.set_result([])
                continue
            if self.decoder is None:  # one at a time, as before batching
                self._waiting.popleft()
                _settle(
                    request.future,
                    lambda r=request: complete(
                        self.model, self.tokenizer, r.prompt_ids, r.sampling, r.on_text, r.cancelled
                    ),
                )
                return  # let the inbox be read (new requests, cancellations) between two requests
            rows = request.sampling.num_return_sequences
            if self.decoder.active and self.decoder.rows + rows > self.max_batch:
                return
            self._waiting.popleft()
            try:
                if not self.decoder.start(request):
                    request.future.set_result(request.results)
            except Exception as error:  # this request alone fails (e.g. a bad argument)
                request.future.set_exception(error)

    def _step(self) -> None:
        try:
            finished = self.decoder.step()
        except Exception as error:  # a shared step failed: every running request gets the error
            log.exception("decoding step failed")
            for request in self.decoder.fail_all():
                request.future.set_exception(error)
            return
        for request in finished:
            request.future.set_result(request.results)

    def _stop(self) -> None:
        error = RuntimeError("the server is shutting down")
        for request in [*self._waiting, *(self.decoder.fail_all() if self.decoder else [])]:
            if not request.future.done():
                request.future.set_exception(error)
        self._waiting.clear()


def _settle(future: Future, fn: Callable[[], object]) -> None:
    try:
        future.set_result(fn())
    except Exception as error:  # handed to whoever waits on the future
        future.set_exception(error)
