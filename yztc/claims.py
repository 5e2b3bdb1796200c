"""Claims: the one write both FerretDB v1 and MongoDB make atomic, a unique
`_id` insert, used as the lock-free way to decide who may change something.

A claim is an insert-only document whose `_id` names the thing and the
change (`v:<phone hash>:<n>`, a phone's n-th change; `q:<channel>|…|<k>`, a
quota slot; `a:<message id>#<n>`, an SMS attempt). Of any number of writers
racing for one `_id`, exactly one insert succeeds; the others get E11000 and
may read the winner's document to learn what it did.

Several claims go in one `insert_many(ordered=True)`: one round trip, and
the first refused stops the rest (a quota slot placed first is spent even
when the claim after it loses, as a quota must be). FerretDB runs the batch
as one SQLite transaction and, on an error, falls back to one insert per
document with per-document `writeErrors` honouring `ordered`
(`msg_insert.go`, v1.24.2), so the outcome per document is exact there too.

Retries: MongoDB de-duplicates a retried insert itself (retryable writes);
FerretDB has none, so every claim carries a random `nonce` and a retried
insert that meets E11000 reads the document and counts it as its own when the
nonce is ours. Claims are written with `w: "majority"` (a claim rolled back
by a failover would let two writers through; FerretDB ignores the setting).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from pymongo import WriteConcern
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import AutoReconnect, BulkWriteError, DuplicateKeyError, NetworkTimeout

MAJORITY = WriteConcern("majority")
_DUPLICATE_KEY = 11000


def majority(collection: AsyncCollection) -> AsyncCollection:
    """The collection with `w: "majority"` writes: for claims and records."""
    return collection.with_options(write_concern=MAJORITY)


@dataclass(frozen=True)
class Outcome:
    """How a batch of claims went, in the order given.

    `won`: how many of the first claims this caller holds (ordered, so a
    prefix). `refused`: the `_id` of the first claim another writer holds,
    or None if all were won."""

    won: int
    refused: str | None

    @property
    def all_won(self) -> bool:
        return self.refused is None


async def take(collection: AsyncCollection, claims: list[dict], retries: int = 1) -> Outcome:
    """Inserts `claims` (each a document with its `_id`) in one ordered batch.

    Adds a `nonce` to each. A network error is retried `retries` times; on the
    retry, E11000 on a claim whose stored nonce is ours counts as won.
    Raises PyMongoError for anything but a refused claim."""
    docs = [{**claim, "nonce": claim.get("nonce") or secrets.token_hex(8)} for claim in claims]
    start = 0
    attempt = 0
    while start < len(docs):
        try:
            if len(docs) - start == 1:
                await collection.insert_one(docs[start])
            else:
                await collection.insert_many(docs[start:], ordered=True)
            return Outcome(len(docs), None)
        except (AutoReconnect, NetworkTimeout):
            if attempt >= retries:
                raise
            attempt += 1
            continue  # the retry below tells our own earlier insert from another's
        except DuplicateKeyError:
            failed_at = start
        except BulkWriteError as error:
            errors = error.details.get("writeErrors", [])
            if not errors or errors[0].get("code") != _DUPLICATE_KEY:
                raise
            failed_at = start + errors[0]["index"]
        if attempt and await _is_ours(collection, docs[failed_at]):
            start = failed_at + 1  # our own insert, answered before the connection broke
            continue
        return Outcome(failed_at, docs[failed_at]["_id"])
    return Outcome(len(docs), None)


async def _is_ours(collection: AsyncCollection, doc: dict) -> bool:
    stored = await collection.find_one({"_id": doc["_id"]}, {"nonce": 1})
    return stored is not None and stored.get("nonce") == doc["nonce"]
