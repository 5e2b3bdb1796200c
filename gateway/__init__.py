"""The HTTP gateway of the Alipay mini-program: sessions by Alipay login,
then the CONTRACT's JSON API in front of the aggregator's gRPC channel API."""
