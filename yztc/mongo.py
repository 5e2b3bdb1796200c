"""The one AsyncMongoClient of a process, from MONGODB_URI."""

from __future__ import annotations

from pymongo import AsyncMongoClient


def connect(uri: str, app_name: str) -> AsyncMongoClient:
    # Short server selection so a down database shows as UNAVAILABLE quickly
    # instead of holding a request for the driver's default 30 s.
    return AsyncMongoClient(
        uri,
        appname=app_name,
        serverSelectionTimeoutMS=3000,
        connectTimeoutMS=3000,
        tz_aware=True,
    )
