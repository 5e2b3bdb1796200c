# The channel API's tools: grpcurl (walk-throughs, tests) and buf (lint and
# breaking-change check against the released API image, offline).

GRPCURL := $(GOBIN_DIR)/grpcurl
BUF     := $(GOBIN_DIR)/buf
API_IMAGE := protos/released/yztc-v1.binpb

.PHONY: grpcurl buf lint-protos api-image

install: grpcurl buf

grpcurl: $(GRPCURL)
$(GRPCURL):
	mkdir -p $(GOBIN_DIR)
	GOBIN=$(GOBIN_DIR) go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3

buf: $(BUF)
$(BUF):
	mkdir -p $(GOBIN_DIR)
	GOBIN=$(GOBIN_DIR) go install github.com/bufbuild/buf/cmd/buf@v1.75.0

# buf lint, and no breaking change against the last released API (part of
# `make lint`, mk/lint.mk).
lint-protos: $(BUF)
	cd protos && $(BUF) lint
	cd protos && $(BUF) breaking --against ../$(API_IMAGE)

# Run when releasing a new API version: the image `lint` compares against.
api-image: $(BUF)
	cd protos && $(BUF) build -o ../$(API_IMAGE)
