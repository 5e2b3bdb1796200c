// Command ferretdb runs FerretDB v1 embedded, with the SQLite handler.
//
// Why a wrapper of our own: `go install github.com/FerretDB/FerretDB/cmd/ferretdb`
// builds a binary that panics at start-up because the module ships without
// build/version/version.txt (FerretDB issue #2982). Importing the
// `ferretdb` package from our own main module avoids that check, and the
// embedded mode never sends telemetry.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"log/slog"
	"net/http"
	_ "net/http/pprof" // served only with -debug-addr
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27017", "host:port to listen on (port 0 picks a free one)")
	dataDir := flag.String("data-dir", "var/ferretdb", "folder for the SQLite files (created if missing)")
	logLevel := flag.String("log-level", "warn", "debug, info, warn or error (info logs every client connection)")
	debugAddr := flag.String("debug-addr", "", "host:port for Go's /debug/pprof/ (profiling FerretDB's CPU; empty: off)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		log.Fatalf("-log-level: %v", err)
	}
	logger := slog.New(lazyAttrs{next: slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})})

	// Go's collector ran at 14 % of FerretDB's CPU under the bench's load
	// with the default GOGC=100; 200 halves its runs for ~40 MiB more heap
	// at peak. An explicit GOGC in the environment wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(200)
	}

	if *debugAddr != "" {
		go func() { log.Println(http.ListenAndServe(*debugAddr, nil)) }()
	}

	dir, err := filepath.Abs(*dataDir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		log.Fatal(err)
	}

	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *listen},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir + "/",
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	done := make(chan struct{})
	go func() {
		f.Run(ctx)
		close(done)
	}()

	// MongoDBURI blocks until the listener is bound, so the line below
	// tells a supervisor both that we are ready and which port we got.
	fmt.Println("ready", f.MongoDBURI())
	<-done
}
