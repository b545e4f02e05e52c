package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures an in-process NATS server.
type EmbeddedConfig struct {
	// Listen is the client address, host:port; port 0 picks a free one.
	// Default 127.0.0.1:4222.
	Listen string
	// StoreDir holds JetStream's files. Empty: a new temporary directory,
	// removed by Shutdown.
	StoreDir string
	// ClusterListen is the route address (host:port) on which this server
	// meets the other embedded servers of a NATS cluster, so that the
	// stream survives the loss of one of them (three servers and
	// Config.Replicas 3). Empty: a standalone server.
	ClusterListen string
	// Routes are the route URLs (nats://host:port) of the cluster's
	// servers; this server's own may be among them.
	Routes []string
	// Name names the server, unique in its NATS cluster. Default derived
	// from Listen.
	Name string
	// Log receives the server's notices and errors; nil discards them.
	Log *slog.Logger
}

// Embedded is a NATS server with JetStream running in this process, which
// other nodes join with -nats nats://ADDR.
type Embedded struct {
	srv     *server.Server
	tempDir string
}

// StartEmbedded starts a NATS server and waits until it accepts clients.
// A busy or bad address is an error, never a crash.
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:4222"
	}
	host, portText, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: -nats-listen %q: %w", cfg.Listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("cluster: -nats-listen %q: bad port", cfg.Listen)
	}
	// Fail with a clear error when the address is taken: the server itself
	// would only log it.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("cluster: embedded NATS cannot listen on %s: %w", cfg.Listen, err)
	}
	ln.Close()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	e := &Embedded{}
	dir := cfg.StoreDir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "tickerd-nats-"); err != nil {
			return nil, fmt.Errorf("cluster: embedded NATS store: %w", err)
		}
		e.tempDir = dir
	}
	opts := &server.Options{
		Host:      host,
		Port:      port,
		JetStream: true,
		StoreDir:  dir,
		NoSigs:    true,
	}
	if cfg.ClusterListen != "" {
		chost, cport, err := splitPort(cfg.ClusterListen)
		if err != nil {
			e.cleanup()
			return nil, fmt.Errorf("cluster: -nats-cluster-listen %q: %w", cfg.ClusterListen, err)
		}
		opts.Cluster = server.ClusterOpts{Name: "tickerd", Host: chost, Port: cport}
		opts.Routes = server.RoutesFromStr(strings.Join(cfg.Routes, ","))
		opts.ServerName = cfg.Name
		if opts.ServerName == "" {
			opts.ServerName = "tickerd-" + strings.NewReplacer(":", "-", ".", "-").Replace(cfg.ClusterListen)
		}
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		e.cleanup()
		return nil, fmt.Errorf("cluster: embedded NATS: %w", err)
	}
	srv.SetLoggerV2(natsLogger{log: cfg.Log}, false, false, false)
	e.srv = srv
	go srv.Start() // owned by srv: Shutdown waits for it
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		e.cleanup()
		return nil, fmt.Errorf("cluster: embedded NATS on %s did not start within 10s", cfg.Listen)
	}
	return e, nil
}

// splitPort splits host:port into a host and a port for server.Options.
func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", p)
	}
	return host, port, nil
}

// ClientURL is the nats:// URL that clients of this server dial.
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// Addr is the server's client listen address, host:port.
func (e *Embedded) Addr() string {
	if a, ok := e.srv.Addr().(*net.TCPAddr); ok {
		return a.String()
	}
	return ""
}

// Shutdown stops the server, waits for it, and removes a temporary store.
// Safe to call twice.
func (e *Embedded) Shutdown() {
	if e == nil || e.srv == nil {
		return
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.cleanup()
}

func (e *Embedded) cleanup() {
	if e.tempDir != "" {
		_ = os.RemoveAll(e.tempDir)
		e.tempDir = ""
	}
}

// natsLogger sends the embedded server's log to slog. Fatalf logs an
// error and never exits the process.
type natsLogger struct{ log *slog.Logger }

func (l natsLogger) logf(level slog.Level, format string, v ...any) {
	if l.log != nil {
		l.log.Log(context.Background(), level, "nats-server: "+fmt.Sprintf(format, v...))
	}
}

func (l natsLogger) Noticef(format string, v ...any) { l.logf(slog.LevelDebug, format, v...) }
func (l natsLogger) Warnf(format string, v ...any)   { l.logf(slog.LevelWarn, format, v...) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.logf(slog.LevelError, format, v...) }
func (l natsLogger) Errorf(format string, v ...any)  { l.logf(slog.LevelError, format, v...) }
func (l natsLogger) Debugf(format string, v ...any)  {}
func (l natsLogger) Tracef(format string, v ...any)  {}
