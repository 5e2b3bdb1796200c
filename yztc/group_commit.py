"""Group commit: writes that arrive while the previous batch is in flight go
together in the next one, so under load one command carries many of them
and at rest each goes at once (no added delay, unlike a timer).

Why: on FerretDB each command costs about a millisecond of its CPU (a
SQLite transaction with its fsync) whatever it carries, and each costs a
quarter of a millisecond of PyMongo's in our process; the writes batched
here (a query's work document, a phone document, a final record, an SMS
record) are independent of each other, keyed by `_id`, and each caller
waits only for its own outcome. The same technique databases use for their
log (e.g. PostgreSQL's commit_delay, without the delay).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from pymongo import ReplaceOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, OperationFailure

T = TypeVar("T")
R = TypeVar("R")



class GroupCommit(Generic[T, R]):
    """`await submit(item)` returns `item`'s result from one call of
    `write(batch)`, which must return one result or exception per item, in
    order (raising fails the whole batch). At most `max_batch` items a call."""

    def __init__(self, write: Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]],
                 max_batch: int = 256) -> None:
        self._write = write
        self._max = max_batch
        self._queue: list[tuple[T, asyncio.Future]] = []
        self._running: asyncio.Task | None = None

    async def submit(self, item: T) -> R:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._running is None or self._running.done():
            self._running = asyncio.create_task(self._drain(), name="group-commit")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max], self._queue[self._max:]
            try:
                results = await self._write([item for item, _ in batch])
            except BaseException as error:  # noqa: BLE001 (handed to every waiter)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)


def _per_document(count: int, error: BulkWriteError) -> list[BaseException | None]:
    """One outcome per document of an unordered bulk write that failed in
    part: DuplicateKeyError where the `_id` was taken, the server's error
    where something else went wrong, None where it was written."""
    outcomes: list[BaseException | None] = [None] * count
    for failure in error.details.get("writeErrors", []):
        cls = DuplicateKeyError if failure.get("code") == 11000 else OperationFailure
        outcomes[failure["index"]] = cls(failure.get("errmsg", "write error"), failure.get("code"))
    return outcomes


def inserts(collection: AsyncCollection) -> GroupCommit[dict, None]:
    """Group-committed `insert_one`s: one unordered `insert_many` a batch;
    a taken `_id` raises DuplicateKeyError to its own caller only."""

    async def write(docs: Sequence[dict]) -> list[BaseException | None]:
        try:
            await collection.insert_many(list(docs), ordered=False)
        except BulkWriteError as error:
            return _per_document(len(docs), error)
        return [None] * len(docs)

    return GroupCommit(write)


def replacements(collection: AsyncCollection) -> GroupCommit[dict, None]:
    """Group-committed upserting `replace_one`s by `_id`: one unordered bulk
    write a batch (FerretDB runs its statements one by one, each by `_id`)."""

    async def write(docs: Sequence[dict]) -> list[BaseException | None]:
        try:
            await collection.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
        except BulkWriteError as error:
            return _per_document(len(docs), error)
        return [None] * len(docs)

    return GroupCommit(write)
