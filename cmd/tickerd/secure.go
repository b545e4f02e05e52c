package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"tickerd/entitlements"
)

// openAuth loads the -auth file; nil in open mode. A file that does not
// parse stops the server at start (later, a bad reload keeps the previous
// one).
func openAuth(c *config, log *slog.Logger) (*entitlements.Store, error) {
	if c.authFile == "" {
		log.Warn("open mode: no -auth file; every client sees every symbol realtime, from any origin")
		return nil, nil
	}
	st, err := entitlements.Open(c.authFile)
	if err != nil {
		return nil, fmt.Errorf("-auth: %w", err)
	}
	cfg := st.Config()
	log.Info("entitlements loaded", "file", c.authFile, "users", len(cfg.Users), "groups", len(cfg.Groups),
		"jwt", cfg.JWT != nil, "delay", c.delay)
	return st, nil
}

// certificate serves the -tls-cert/-tls-key pair, read again on reload
// so that a renewed certificate needs no restart.
type certificate struct {
	certFile, keyFile string
	mu                sync.RWMutex
	cert              *tls.Certificate
}

func loadCertificate(certFile, keyFile string) (*certificate, error) {
	c := &certificate{certFile: certFile, keyFile: keyFile}
	if err := c.reload(); err != nil {
		return nil, err
	}
	return c, nil
}

// reload reads the pair again; on error the previous one stays.
func (c *certificate) reload() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("-tls-cert/-tls-key: %w", err)
	}
	c.mu.Lock()
	c.cert = &cert
	c.mu.Unlock()
	return nil
}

func (c *certificate) config() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"}, // WebSocket and long-lived streams are HTTP/1.1 here
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			c.mu.RLock()
			defer c.mu.RUnlock()
			return c.cert, nil
		},
	}
}

// onHangup runs reload on each SIGHUP until ctx ends.
func onHangup(ctx context.Context, reload func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload()
			}
		}
	}()
}
