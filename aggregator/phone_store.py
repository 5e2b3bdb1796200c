"""Phones in MongoDB: one document per phone (collection `phones`, `_id` the
phone's keyed hash) holding its whole state (phone_rules.Phone), and the
claim chain that orders its changes (collection `claims`, `_id`
`v:<phone hash>:<n>`, insert-only).

A change is committed by winning claim n = v + 1 (yztc/claims.py), the
claim carrying the event; then the document is rewritten at version n. The
claim is the commit, the document a cache: a writer whose claim is refused
reads the winner's claim, folds it onto its state and tries n + 1, so a
document left behind (its writer died between claim and write, or two
writes landed out of order) costs a reader a round trip, never a wrong
answer. Every read and write on a request's path is by `_id`, the one
filter FerretDB v1 answers from an index (the retention pass's clean-up and
counts scan); on a MongoDB cluster both collections shard on hashed `_id`.
A phone's `_id` is its keyed hash, naming its key (personal_data,
yztc.keyed_hashes): during a key rotation `read` looks under each key.

Happy path per operation: one read (the document; none when this replica
made the phone's last change, see `PhoneStore`), one claims insert (with the
channel's quota slots in the same ordered batch), one write, off the
answer's path. An accepted query's claim is not followed by a write (the
intake's hot path): the document stays one version behind until the
phone's next change, and a reader of it on another replica, or after the
cache has lapsed, folds the accept claim in with one more read (`claim`
loses to it, or `catch_up` finds it). Claims outlive every effect of their
event (KEEP_CLAIMS), so nothing is lost meanwhile.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from aggregator.phone_rules import Code, Event, LastQuery, Phone, apply
from yztc import claims
from yztc.keyed_hashes import made_under

# How long a phone's state this replica committed is answered from memory
# (a code's life: the submission that follows is the read it saves).
CACHE_SECONDS = 300.0
# Claims older than this are deleted: by then every effect an event can
# have (a 24 h lock, 24 h of sends, a query's 48 h + 24 h) has lapsed.
KEEP_CLAIMS = dt.timedelta(hours=73)


@dataclass(frozen=True)
class Committed:
    phone: Phone


@dataclass(frozen=True)
class Lost:
    """Another writer took this version first: `phone` is the state after
    its change (`rival`), ready for the next try."""

    phone: Phone
    rival: Event


@dataclass(frozen=True)
class SlotTaken:
    """One of the quota slots sent with the claim was taken (by another replica)."""

    slot_id: str


def _code_doc(code: Code | None) -> dict | None:
    if code is None:
        return None
    return {
        "id": code.id,
        "hmac": code.hmac,
        "expires_at": code.expires_at,
        "failures": code.failures,
        "used_by": code.used_by,
        "owner": code.owner,
    }


def _code(doc: dict | None) -> Code | None:
    if not doc:
        return None
    return Code(
        doc["id"], doc["hmac"], doc["expires_at"], doc.get("failures", 0), doc.get("used_by"), doc.get("owner", "")
    )


def _last_doc(last: LastQuery | None) -> dict | None:
    return None if last is None else {"query_id": last.query_id, "accepted_at": last.accepted_at}


def _last(doc: dict | None) -> LastQuery | None:
    return None if not doc else LastQuery(doc["query_id"], doc["accepted_at"])


def phone_to_doc(phone: Phone, now: dt.datetime) -> dict:
    return {
        "_id": phone.hash,
        "v": phone.v,
        "code": _code_doc(phone.code),
        "sends": list(phone.sends),
        "lock_until": phone.lock_until,
        "last": _last_doc(phone.last),
        "before_last": _last_doc(phone.before_last),
        "touched_at": now,
    }


def phone_from_doc(phone_hash: str, doc: dict | None) -> Phone:
    if doc is None:
        return Phone(phone_hash)
    return Phone(
        hash=phone_hash,
        v=doc["v"],
        code=_code(doc.get("code")),
        sends=tuple(doc.get("sends", ())),
        lock_until=doc.get("lock_until"),
        last=_last(doc.get("last")),
        before_last=_last(doc.get("before_last")),
    )


def event_to_claim(phone_hash: str, n: int, event: Event, owner: str) -> dict:
    return {
        "_id": f"v:{phone_hash}:{n}",
        "kind": event.kind,
        "at": event.at,
        "code": _code_doc(event.code),
        "query_id": event.query_id,
        "until": event.until,
        "owner": owner,
    }


def event_from_claim(doc: dict) -> Event:
    return Event(doc["kind"], doc["at"], _code(doc.get("code")), doc.get("query_id"), doc.get("until"))


class PhoneStore:
    """`read` answers from memory for a phone this replica changed in the
    last CACHE_SECONDS (the code it sent, typically): the claim that follows
    proves the copy current (had anyone changed the phone since, their
    claim of the same version refuses ours and is folded), and an answer
    given without a claim first catches up with the claims (`catch_up`).
    Claims are kept far longer than a cached copy lives."""

    def __init__(
        self, db: AsyncDatabase, owner: str, cache_size: int = 100_000, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._phones = claims.majority(db["phones"])
        self._claims = claims.majority(db["claims"])
        self._owner = owner
        self._cache: OrderedDict[str, tuple[Phone, float]] = OrderedDict()
        self._cache_size = cache_size
        self._monotonic = monotonic

    def _remember(self, phone: Phone) -> None:
        self._cache[phone.hash] = (phone, self._monotonic())
        self._cache.move_to_end(phone.hash)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)

    async def ensure_indexes(self) -> None:
        # For the clean-up passes on MongoDB (FerretDB scans either way, hourly).
        await self._claims.create_index([("at", ASCENDING)])
        await self._phones.create_index([("touched_at", ASCENDING)])

    async def read(self, phone_hashes: Sequence[str]) -> Phone:
        """The phone's state, from the first of `phone_hashes` (its keyed
        hash under each configured key, the current one first:
        personal_data.PhoneProtector.lookup_hashes) that holds one.

        A phone stays under the hash its first change was made under, for
        as long as its document lives (a key rotation moves no chain: two
        replicas must never write one phone's changes into two chains), so
        its limits hold through a rotation; a phone new to us starts under
        the current key. During a rotation, a phone not found under the
        current key costs a read of its document, and if there is none of
        its first claim (a first writer that died before writing the
        document), under each previous key. Retention forgets a document
        KEEP_CLAIMS after its last change, so the previous key's phones
        drain away (Retention.count_previous_keys counts them).

        One split remains possible, in step 2 of the runbook's rotation
        only: a phone new to the service, asked for at the same moment on a
        replica already writing under the new key and on one still writing
        under the old, gets a chain under each (two codes sent, each
        counted in its own chain); every later read, on any replica, then
        finds the chain under its own current key first. Claims cannot
        prevent it (they order one `_id`), and it needs two first requests
        for one number within the same few milliseconds of a roll-out."""
        if isinstance(phone_hashes, str):
            raise TypeError("phone_hashes is a sequence of hashes, not one")
        for phone_hash in phone_hashes:
            cached = self._cache.get(phone_hash)
            if cached is not None and self._monotonic() - cached[1] < CACHE_SECONDS:
                return cached[0]
        current, *previous = phone_hashes
        doc = await self._phones.find_one({"_id": current})
        if doc is None:
            for phone_hash in previous:
                older = await self._phones.find_one({"_id": phone_hash})
                if older is not None:
                    return phone_from_doc(phone_hash, older)
                if await self._claims.find_one({"_id": f"v:{phone_hash}:1"}, {"_id": 1}) is not None:
                    return await self.catch_up(Phone(phone_hash))
        return phone_from_doc(current, doc)

    async def claim(self, phone: Phone, event: Event, slots: list[dict] = ()) -> Committed | Lost | SlotTaken:
        """Commits `event` as version `phone.v + 1`, with `slots` (quota
        claims) first in the same insert. The document is not written: call
        `write` with the committed state (off the answer's path if you like).
        Raises PyMongoError if the database is away."""
        claim = event_to_claim(phone.hash, phone.v + 1, event, self._owner)
        outcome = await claims.take(self._claims, [*slots, claim])
        if outcome.all_won:
            committed = apply(phone, event)
            self._remember(committed)
            return Committed(committed)
        if outcome.refused != claim["_id"]:
            return SlotTaken(outcome.refused)
        self._cache.pop(phone.hash, None)
        rival_doc = await self._claims.find_one({"_id": claim["_id"]})
        if rival_doc is None:  # deleted meanwhile (only past KEEP_CLAIMS): retry on this version
            return Lost(phone, Event("void", event.at))
        rival = event_from_claim(rival_doc)
        return Lost(apply(phone, rival), rival)

    async def catch_up(self, phone: Phone) -> Phone:
        """The state with every claim past `phone.v` folded in: for an answer
        that refuses without claiming (a dead, expired or used code), so that
        a document not yet rewritten by its last writer cannot mislead it.
        One read when the document is current."""
        for _ in range(1000):
            doc = await self._claims.find_one({"_id": f"v:{phone.hash}:{phone.v + 1}"})
            if doc is None:
                self._remember(phone)
                return phone
            phone = apply(phone, event_from_claim(doc))
        return phone

    async def write(self, phone: Phone, now: dt.datetime) -> None:
        """The document at the committed version. Writes racing for one phone
        may land out of order; a reader then finds the newer claims (Lost)."""
        await self._phones.replace_one({"_id": phone.hash}, phone_to_doc(phone, now), upsert=True)

    async def count_under_key(self, key_id: str) -> int:
        """Phone documents whose `_id` was made under hash key `key_id` (a
        scan: for the retention pass during a key rotation, not a hot path)."""
        return await self._phones.count_documents({"_id": made_under(key_id)})

    async def forget(self, now: dt.datetime) -> None:
        """Retention: claims past KEEP_CLAIMS and phones untouched as long
        (their state can no longer limit anything)."""
        await self._claims.delete_many({"at": {"$lt": now - KEEP_CLAIMS}})
        # A document whose last writer died before rewriting it still has a
        # newer claim: it goes on a later pass, once that claim has gone, or
        # the next chain would fold that old claim onto a new state.
        async for doc in self._phones.find({"touched_at": {"$lt": now - KEEP_CLAIMS}}, {"v": 1}):
            if await self._claims.find_one({"_id": f"v:{doc['_id']}:{doc['v'] + 1}"}, {"_id": 1}) is None:
                await self._phones.delete_one({"_id": doc["_id"]})
