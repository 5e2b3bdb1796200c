"""Generated stubs of protos/yztc/v1 (made by `make protos`; never edited)."""
