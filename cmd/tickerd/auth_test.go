package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"tickerd/internal/streamtest"
)

// startLogged is start with logs readable while tickerd runs.
func startLogged(t *testing.T, args ...string) (*exec.Cmd, *streamtest.SyncBuffer) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	logs := &streamtest.SyncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, logs
}

func status(t *testing.T, client *http.Client, u, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const cmdAuthFile = `groups:
  all: {realtime: ["*"]}
users:
  - name: alice
    keys: ["key-alice-1"]
    groups: [all]
`

// -auth: a bad file stops tickerd at start naming the line; a good one
// makes credentials required; SIGHUP reloads it, and a bad reload keeps
// the previous one. Without -auth, the open mode is logged as a warning.
func TestAuthFileAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(path, []byte("groups:\n  g: {realtime: [\"a b\"]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "-addr", freeAddr(t), "-auth", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "line 2") {
		t.Fatalf("bad -auth file: err %v, output %s; want a failure naming line 2", err, out)
	}

	if err := os.WriteFile(path, []byte(cmdAuthFile), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	cmd, logs := startLogged(t, "-addr", addr, "-auth", path, "-sim-symbols", "20", "-sim-rate", "200")
	waitReady(t, base)
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	if got := status(t, c, base+"/v1/symbols", ""); got != 401 {
		t.Fatalf("no credential: %d", got)
	}
	if got := status(t, c, base+"/v1/symbols", "key-alice-1"); got != 200 {
		t.Fatalf("alice's key: %d", got)
	}
	if got := status(t, c, base+"/healthz", ""); got != 200 {
		t.Fatalf("healthz needs no credential: %d", got)
	}
	// An open stream of alice's; her key is replaced: it is revoked.
	s, err := streamtest.DialHeader(context.Background(), base, streamtest.WS, url.Values{"symbols": {"AAPL"}},
		http.Header{"Authorization": {"Bearer key-alice-1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	streamtest.WaitFor(t, 10*time.Second, "AAPL", func() error {
		if s.View()["AAPL"].Seq == 0 {
			return fmt.Errorf("none yet")
		}
		return nil
	})
	if err := os.WriteFile(path, []byte(strings.Replace(cmdAuthFile, "key-alice-1", "key-alice-2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	streamtest.WaitFor(t, 5*time.Second, "key rotated by SIGHUP", func() error {
		if got := status(t, c, base+"/v1/symbols", "key-alice-2"); got != 200 {
			return fmt.Errorf("new key: %d", got)
		}
		return nil
	})
	if got := status(t, c, base+"/v1/symbols", "key-alice-1"); got != 401 {
		t.Fatalf("old key after reload: %d", got)
	}
	select {
	case <-s.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the revoked key's stream is still open")
	}
	if m := s.Closed(); m == nil || m.Code != "revoked" {
		t.Fatalf("close %+v, want revoked", m)
	}
	// A bad file on SIGHUP: logged, previous kept.
	if err := os.WriteFile(path, []byte("users: [oops\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	streamtest.WaitFor(t, 5*time.Second, "reload error logged", func() error {
		if !strings.Contains(logs.String(), "entitlements reload failed") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	if got := status(t, c, base+"/v1/symbols", "key-alice-2"); got != 200 {
		t.Fatalf("after a bad reload: %d", got)
	}
	if strings.Contains(logs.String(), "key-alice") {
		t.Fatal("a key reached the logs")
	}

	// Open mode is logged.
	addr2 := freeAddr(t)
	_, logs2 := startLogged(t, "-addr", addr2, "-feed", "none")
	waitReady(t, "http://"+addr2)
	if !strings.Contains(logs2.String(), "open mode") {
		t.Fatalf("no open-mode warning: %s", logs2)
	}
}

// selfSigned writes a certificate and key for 127.0.0.1 into dir.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tickerd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// -tls-cert/-tls-key: HTTPS and WSS with a credential; plain HTTP is not
// served on the port.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	path := filepath.Join(dir, "auth.yaml")
	if err := os.WriteFile(path, []byte(cmdAuthFile), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary, "-tls-cert", certFile).CombinedOutput(); err == nil || !strings.Contains(string(out), "go together") {
		t.Fatalf("-tls-cert alone: %v %s", err, out)
	}
	addr := freeAddr(t)
	_, logs := startLogged(t, "-addr", addr, "-auth", path, "-tls-cert", certFile, "-tls-key", keyFile,
		"-sim-symbols", "20", "-sim-rate", "200")
	tlsConf := &tls.Config{RootCAs: pool}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	defer client.CloseIdleConnections()
	base := "https://" + addr
	streamtest.WaitFor(t, 20*time.Second, "tickerd ready over TLS", func() error {
		resp, err := client.Get(base + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		return nil
	})
	if got := status(t, client, base+"/v1/symbols", "key-alice-1"); got != 200 {
		t.Fatalf("HTTPS symbols: %d", got)
	}
	if got := status(t, client, base+"/v1/symbols", ""); got != 401 {
		t.Fatalf("HTTPS without credential: %d", got)
	}
	d := websocket.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: 5 * time.Second}
	conn, _, err := d.Dial("wss://"+addr+"/v1/ws?symbols=AAPL&token=key-alice-1", nil)
	if err != nil {
		t.Fatalf("WSS: %v", err)
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, b, err := conn.ReadMessage()
		if err != nil {
			t.Fatalf("WSS read: %v", err)
		}
		if bytes.Contains(b, []byte(`"type":"snapshot"`)) {
			break
		}
	}
	plain := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := plain.Get("http://" + addr + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP answered 200 on the TLS port")
		}
	}
	if !strings.Contains(logs.String(), "https://") {
		t.Errorf("the serving URL is not https: %s", logs)
	}
}

// -delay: a delayed-tier user of the binary gets messages marked delayed,
// each read at least the delay after its ingest; the buffer is reported.
func TestDelayedTierBinary(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "auth.yaml")
	file := "groups:\n  dl: {delayed: [\"*\"]}\nusers:\n  - name: dave\n    keys: [\"key-dave-1\"]\n    groups: [dl]\n"
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	base := "http://" + addr
	startLogged(t, "-addr", addr, "-auth", path, "-delay", "1500ms", "-sim-symbols", "20", "-sim-rate", "400", "-max-hz", "100")
	waitReady(t, base)
	c, err := streamtest.DialOptions(context.Background(), base, streamtest.WS, url.Values{"symbols": {"AAPL,MSFT"}},
		streamtest.Options{Header: http.Header{"Authorization": {"Bearer key-dave-1"}}, Log: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	streamtest.WaitFor(t, 10*time.Second, "delayed updates", func() error {
		if n, _ := c.Counts(); n < 20 {
			return fmt.Errorf("%d data messages", n)
		}
		return nil
	})
	for _, m := range c.Data() {
		if !m.Delayed {
			t.Fatalf("message without delayed:true: %+v", m)
		}
	}
	for _, l := range c.TakeLatencies() {
		if l < 1500*time.Millisecond {
			t.Fatalf("a delayed update read %v after its ingest", l)
		}
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{"tickerd_delay_buffer_bytes", "tickerd_delay_applied_total", "tickerd_delay_lag_seconds"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
