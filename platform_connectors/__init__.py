"""Connectors: one gRPC service per enterprise (8 companies, 4 operators),
each translating our protocol to that enterprise's own API. The aggregator
sees only the gRPC interfaces in protos/yztc/v1."""
