package main

import (
	"context"
	"log/slog"
)

// lazyAttrs is a slog.Handler that keeps attributes given to With aside and
// formats them only for a record that is written.
//
// Why: FerretDB v1's SQL wrapper calls `l.With(slog.Any("args", args))` before
// every statement (internal/util/fsql/tx.go), for a debug line that is almost
// never enabled. slog's built-in handlers format those attributes eagerly in
// WithAttrs, quoting every document's JSON: 8 % of FerretDB's CPU under the
// bench's load (pprof, 2026-11-30), for nothing. With this handler the cost is
// a slice append.
type lazyAttrs struct {
	next  slog.Handler
	attrs []slog.Attr
}

func (h lazyAttrs) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h lazyAttrs) Handle(ctx context.Context, r slog.Record) error {
	next := h.next
	if len(h.attrs) > 0 {
		next = next.WithAttrs(h.attrs)
	}
	return next.Handle(ctx, r)
}

func (h lazyAttrs) WithAttrs(attrs []slog.Attr) slog.Handler {
	kept := make([]slog.Attr, 0, len(h.attrs)+len(attrs))
	return lazyAttrs{next: h.next, attrs: append(append(kept, h.attrs...), attrs...)}
}

func (h lazyAttrs) WithGroup(name string) slog.Handler {
	next := h.next
	if len(h.attrs) > 0 {
		next = next.WithAttrs(h.attrs)
	}
	return lazyAttrs{next: next.WithGroup(name)}
}
