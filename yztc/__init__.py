"""What every yztc service shares: settings, logging, telemetry, gRPC
bootstrap, the error catalogue, identifiers, and the generated stubs (yztc.v1)."""
