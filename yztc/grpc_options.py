"""gRPC channel arguments every server and every client of ours uses: the
keep-alive policy (CONTRACT, gRPC API: "Servers accept client keep-alive
pings every 10 s or more, with or without calls in flight"), the servers'
message-size and concurrency limits (security review L3), and the retry
policy of the idempotent internal calls, as service configuration.

Names and semantics are gRPC core's channel arguments (grpc/grpc
doc/keepalive.md, include/grpc/impl/channel_arg_names.h) and its service
config (gRFC A6 "gRPC Retry Design", doc/service_config.md).
"""

from __future__ import annotations

import json
from typing import Final

from yztc.v1 import account_query_pb2, operator_connector_pb2, sms_notifier_pb2

Options = list[tuple[str, int | str]]

# The CONTRACT's promise to clients: a ping every 10 s or more is fine.
CLIENT_PING_INTERVAL_MIN_MS: Final = 10_000

# What the server enforces: a second below the promise. gRPC core strikes a
# ping that arrives sooner than this after the previous one, and the
# strikes are only forgiven when the server sends headers or data, so on a
# channel idle for hours even rare early arrivals (a 10-s client whose one
# ping the network delayed and whose next it did not) would add up to a
# GOAWAY `too_many_pings`. The default is 5 minutes.
SERVER_MIN_RECV_PING_INTERVAL_MS: Final = 9_000
# Pings sooner than the minimum tolerated before GOAWAY ENHANCE_YOUR_CALM
# (gRPC's default, said explicitly: 0 would mean "no limit").
SERVER_MAX_PING_STRIKES: Final = 2

# Message sizes, said explicitly so that no library default decides them
# (gRPC core's receive default is 4 MiB; its send default is unlimited).
# The largest message any of our services takes is tiny (a SubmitQuery of a
# few short strings, an SMS text), so a smaller cap would do for the
# transport; the cap is kept at 4 MiB on purpose: a request over it is
# refused by the transport with RESOURCE_EXHAUSTED and no CONTRACT code,
# while every request under it reaches our field checks, which refuse an
# over-long field with INVALID_ARGUMENT and say which rule it broke
# (aggregator/request_rules.py, yztc/identifiers.py; issue 13's acceptance
# case is a 4,000,000-byte requester_id: 4,000,000 plus a few bytes of
# framing and the other fields is under 4,194,304). A field is never stored
# or hashed before its length is checked, so the cap bounds only what one
# call may hold in memory while it is parsed.
MAX_RECEIVE_MESSAGE_BYTES: Final = 4 * 1024 * 1024
# Our answers are small too (a query with 8 companies, the enterprise list,
# a reflection file descriptor): the same bound, never reached.
MAX_SEND_MESSAGE_BYTES: Final = 4 * 1024 * 1024
# Calls in flight on one HTTP/2 connection (SETTINGS_MAX_CONCURRENT_STREAMS;
# gRPC core's default is unlimited). A client over it waits for a stream
# instead of being refused. The busiest connections we make, the engine's
# to a connector (at most `max_in_flight` = 200 rounds, aggregator/settings.py,
# each with one call per connector at a time) and the gateway's to the
# aggregator, stay well under it.
MAX_CONCURRENT_STREAMS: Final = 1000
# Calls in flight in one server, all connections together
# (`grpc.aio.server(maximum_concurrent_rpcs=...)`: over it, RESOURCE_EXHAUSTED
# at once), so a flood from many connections cannot grow memory without
# bound either. A few times what the bench's peak puts through one server.
MAX_CONCURRENT_RPCS: Final = 4000

SERVER_OPTIONS: Final[Options] = [
    # GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS: the "recv" is not in its string.
    ("grpc.http2.min_ping_interval_without_data_ms", SERVER_MIN_RECV_PING_INTERVAL_MS),
    # Without it, gRPC core allows one ping per 2 hours on a connection with
    # no call in flight (RFC 1122's TCP keep-alive interval), whatever the minimum.
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_ping_strikes", SERVER_MAX_PING_STRIKES),
    ("grpc.max_receive_message_length", MAX_RECEIVE_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_SEND_MESSAGE_BYTES),
    ("grpc.max_concurrent_streams", MAX_CONCURRENT_STREAMS),
]

# Our own clients keep alive as a channel may: a ping after 10 s without
# activity, calls or not (an idle channel through an L4 load balancer must
# not look idle to it), and the connection closed if the ping is not
# answered within 10 s (a dead peer found in 20 s, not the kernel's minutes).
CLIENT_KEEPALIVE_OPTIONS: Final[Options] = [
    ("grpc.keepalive_time_ms", CLIENT_PING_INTERVAL_MIN_MS),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 1),
    # gRPC core sends at most 2 pings while it sends no data, then one a
    # minute; 0 lifts that, so idle channels go on pinging every 10 s.
    ("grpc.http2.max_pings_without_data", 0),
]


def _method(descriptor, service: str, method: str) -> dict[str, str]:
    """A service config "name" from the generated descriptors (KeyError, at
    import, if a proto renames what this file names)."""
    found = descriptor.services_by_name[service].methods_by_name[method]
    return {"service": found.containing_service.full_name, "method": found.name}


# Retried on UNAVAILABLE only: calls that read, or that the server answers
# the same however often it is asked. Not retried here:
# - SmsNotifier/Send: its `attempt` field says whether the notifier may
#   skip looking for an earlier try (1: "first, read nothing before
#   submitting"); a gRPC retry resends the same bytes, attempt=1 included,
#   so a retry after an UNAVAILABLE that came when the message was already
#   submitted (a connection lost mid-call, a replica that failed to record
#   it) could reach another replica and send a one-part SMS twice; and the
#   proto asks for 3 s between attempts. Its callers try again with a new
#   attempt number (the engine's rounds, the person's resend). gRPC's
#   transparent retry (an RPC the server's application never saw) still
#   applies to it, as to every call.
# - CompanyConnector: the engine's round rules retry with attempt counts.
# - RequestVerificationCode, SubmitQuery: not idempotent (a code is sent,
#   a query accepted); the gateway answers UNAVAILABLE and the person decides.
_IDEMPOTENT = [
    _method(operator_connector_pb2.DESCRIPTOR, "OperatorConnector", "VerifySubscriber"),
    _method(sms_notifier_pb2.DESCRIPTOR, "SmsNotifier", "GetStatus"),
    _method(account_query_pb2.DESCRIPTOR, "AccountQueryService", "GetQuery"),
    _method(account_query_pb2.DESCRIPTOR, "AccountQueryService", "ListEnterprises"),
]

RETRY_POLICY: Final = {
    # The first try and up to two retries, all within the call's deadline.
    "maxAttempts": 3,
    # Each retry waits a random time in [0, backoff); backoff 0.1 s, then 0.2 s.
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}

# One service config for every channel: a method config only applies to the
# calls of the service it names, so the gateway's channel to the aggregator
# and the aggregator's to the connectors can share it.
SERVICE_CONFIG: Final = {
    "methodConfig": [{"name": _IDEMPOTENT, "retryPolicy": RETRY_POLICY}],
    # Retries pause once failures outrun successes on a channel (tokens
    # start at 10, a failure costs 1, a success gives back 0.1, retries only
    # while above 5): a server that is down is not asked three times a call.
    "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1},
}

CLIENT_OPTIONS: Final[Options] = [
    *CLIENT_KEEPALIVE_OPTIONS,
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
]


def server_options() -> Options:
    """Channel arguments for `grpc.aio.server(options=...)`: the keep-alive
    policy, the message-size limits and the per-connection stream limit.
    The server-wide bound is `MAX_CONCURRENT_RPCS`, given to
    `grpc.aio.server(maximum_concurrent_rpcs=...)` (not a channel argument)."""
    return list(SERVER_OPTIONS)


def client_options() -> Options:
    """Channel arguments for `grpc.aio.insecure_channel/secure_channel(options=...)`:
    keep-alive pings every 10 s with or without calls, and the retry policy
    of the idempotent internal calls (SERVICE_CONFIG)."""
    return list(CLIENT_OPTIONS)
