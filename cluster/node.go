package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"tickerd/conflate"
	"tickerd/feed"
)

var (
	// ErrNoJetStream is returned by Start when the NATS server does not
	// run JetStream.
	ErrNoJetStream = errors.New("cluster: the NATS server has no JetStream (start nats-server with -js)")
	// ErrClosed is returned by operations on a closed Node.
	ErrClosed = errors.New("cluster: node closed")
)

// Config configures a Node. Zero fields take the defaults named.
type Config struct {
	// URL is the NATS server URL, or a comma list of them. Required.
	URL string
	// Cache is the node's conflating cache, which the Node feeds. Required.
	Cache *conflate.Cache
	// Sink is where the Node applies the cluster's updates when the
	// cache's own Apply would give the cluster's seq (a recorder in front
	// of Cache, say). Default Cache.
	Sink feed.Sink
	// Interest subscribes only to the symbols this node's clients watch
	// (see Source), fetching each one's snapshot on first watch. Default
	// false: the whole stream.
	Interest bool
	// PruneEvery is how often an Interest node stops following the symbols
	// no session has watched for that long. Default 30s.
	PruneEvery time.Duration
	// Memory keeps the stream and snapshots in memory rather than files.
	// Used when this node creates them; default false (file storage).
	Memory bool
	// MaxAge bounds how long the stream keeps updates. Default 1h.
	MaxAge time.Duration
	// MaxBytes bounds the stream's size. Default 1 GiB.
	MaxBytes int64
	// Replicas is the stream's and buckets' replica count (3 on a
	// three-server JetStream cluster). Default 1.
	Replicas int
	// SnapshotEvery is how often the elected node writes changed symbols
	// to the snapshot bucket. Default 1s.
	SnapshotEvery time.Duration
	// StaleAfter is how long NATS may be unreachable before this node
	// marks what it serves status stale. Default 2s.
	StaleAfter time.Duration
	// ConnectTimeout bounds the first connection; Start fails after it.
	// Default 5s.
	ConnectTimeout time.Duration
	// JetStreamWait bounds how long Start waits for JetStream to answer:
	// a clustered JetStream first needs a quorum of its servers. Default
	// ConnectTimeout.
	JetStreamWait time.Duration
	// ReconnectBufBytes bounds what publishes buffer while NATS is
	// unreachable; past it they fail and are counted. Default 8 MiB.
	ReconnectBufBytes int
	// Name names the node in logs and in NATS. Default host-pid.
	Name string
	// Registerer receives the tickerd_cluster_* metrics; nil = none.
	Registerer prometheus.Registerer
	// Log receives the node's log; nil discards it.
	Log *slog.Logger
}

func (c *Config) defaults() {
	if c.Sink == nil {
		c.Sink = c.Cache
	}
	if c.MaxAge <= 0 {
		c.MaxAge = time.Hour
	}
	if c.MaxBytes <= 0 {
		c.MaxBytes = 1 << 30
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.PruneEvery <= 0 {
		c.PruneEvery = 30 * time.Second
	}
	if c.SnapshotEvery <= 0 {
		c.SnapshotEvery = time.Second
	}
	if c.StaleAfter <= 0 {
		c.StaleAfter = 2 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.JetStreamWait <= 0 {
		c.JetStreamWait = c.ConnectTimeout
	}
	if c.ReconnectBufBytes <= 0 {
		c.ReconnectBufBytes = 8 << 20
	}
	if c.Name == "" {
		host, _ := os.Hostname()
		c.Name = fmt.Sprintf("%s-%d-%04x", host, os.Getpid(), rand.IntN(1<<16))
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Node is one tickerd process's membership in a cluster. As a feed.Sink it
// publishes updates to the cluster; its own goroutine consumes the stream
// into the cache. Its methods are safe for concurrent use.
type Node struct {
	cfg  Config
	log  *slog.Logger
	nc   *nats.Conn
	js   jetstream.JetStream
	m    *metrics
	wake chan struct{} // capacity 1: connection events, new interest
	msgs chan delivery // bounded: the consumer blocks (and NATS reports a slow consumer) when full

	reconnects atomic.Uint64 // bumped by the reconnect handler
	closing    atomic.Bool
	lastPubErr atomic.Int64 // unix ns of the last publish error logged
	connected  atomic.Bool
	synced     atomic.Bool
	leader     atomic.Bool
	applied    atomic.Uint64 // last stream sequence consumed
	syncs      atomic.Uint64 // successful syncs (snapshot loads, consumer starts)
	lag        atomic.Uint64 // messages pending for this node's consumer

	imu      sync.Mutex
	interest map[string]time.Time // symbols followed (Interest mode), since when
	wanted   []string             // watched since the applier last looked
	others   []*conflate.Cache    // wrapped caches whose watchers count as interest (Wrap)

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once
}

// delivery is one stream message, tagged with the consumer that got it.
type delivery struct {
	msg jetstream.Msg
	gen uint64
}

// Start connects to NATS, makes sure the stream and buckets exist, and
// starts consuming. It fails with a clear error when NATS cannot be
// reached within cfg.ConnectTimeout or has no JetStream. The node runs
// until Close.
func Start(cfg Config) (*Node, error) {
	if cfg.Cache == nil {
		return nil, errors.New("cluster: Config.Cache is required")
	}
	if cfg.URL == "" {
		return nil, errors.New("cluster: Config.URL is required")
	}
	cfg.defaults()
	n := &Node{
		cfg:      cfg,
		log:      cfg.Log.With("component", "cluster", "node", cfg.Name),
		wake:     make(chan struct{}, 1),
		msgs:     make(chan delivery, 4096),
		interest: make(map[string]time.Time),
	}
	n.m = newMetrics(cfg.Registerer, n)
	nc, err := nats.Connect(cfg.URL,
		nats.Name("tickerd "+cfg.Name),
		nats.Timeout(cfg.ConnectTimeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.CustomReconnectDelay(backoff),
		nats.ReconnectBufSize(cfg.ReconnectBufBytes),
		nats.PingInterval(5*time.Second),
		nats.MaxPingsOutstanding(2),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			n.connected.Store(false)
			if !n.closing.Load() {
				n.log.Warn("NATS connection lost; serving last values", "err", err)
			}
			n.poke()
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			n.reconnects.Add(1)
			n.connected.Store(true)
			n.log.Info("NATS reconnected; resyncing", "server", c.ConnectedUrlRedacted())
			n.poke()
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if errors.Is(err, nats.ErrSlowConsumer) {
				n.m.slowConsumers.Inc()
				subj := ""
				if sub != nil {
					subj = sub.Subject
				}
				n.log.Warn("NATS slow consumer: messages dropped by the client library", "subject", subj)
				return
			}
			n.log.Warn("NATS error", "err", err)
		}),
	)
	if err != nil {
		return nil, fmt.Errorf("cluster: cannot reach NATS at %s: %w", redact(cfg.URL), err)
	}
	n.nc = nc
	n.connected.Store(true)
	js, err := jetstream.New(nc,
		// Acknowledged publishes: the stream's ingest queue drops what it
		// cannot take from plain publishes, silently. At most this many are
		// in flight; past it Apply waits (back-pressure on the feed).
		jetstream.WithPublishAsyncMaxPending(maxInFlight),
		jetstream.WithPublishAsyncTimeout(10*time.Second),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, m *nats.Msg, err error) {
			n.m.publishErrors.Inc()
			n.logPublishError(m.Subject, err)
		}),
	)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("cluster: %w", err)
	}
	n.js = js
	deadline := time.Now().Add(cfg.JetStreamWait)
	for {
		// Each try has its own deadline: a clustered JetStream without a
		// leader yet does not answer at all.
		try := time.Now().Add(2 * time.Second)
		if try.After(deadline) {
			try = deadline
		}
		ctx, cancel := context.WithDeadline(context.Background(), try)
		err = n.ensure(ctx)
		cancel()
		if err == nil || errors.Is(err, ErrNoJetStream) || !time.Now().Before(deadline) {
			break
		}
		n.log.Debug("JetStream not ready; retrying", "err", err)
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		nc.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	a := newApplier(n)
	n.wg.Add(1)
	go func() { defer n.wg.Done(); a.run(ctx) }()
	n.log.Info("joined cluster", "nats", nc.ConnectedUrlRedacted(), "interest", cfg.Interest)
	return n, nil
}

// backoff is the delay before reconnect attempt n: doubling from 250ms up
// to 5s, with jitter so that a cluster does not reconnect in step.
func backoff(attempts int) time.Duration {
	d := 250 * time.Millisecond << min(attempts, 5)
	d = min(d, 5*time.Second)
	return d/2 + rand.N(d/2+1)
}

// redact hides user info in a NATS URL list.
func redact(urls string) string {
	if i := indexAt(urls); i >= 0 {
		return "nats://(credentials)@" + urls[i+1:]
	}
	return urls
}

func indexAt(s string) int {
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '@' {
			return i
		}
	}
	return -1
}

// ensure creates the stream and the buckets if they are missing (after a
// NATS restart with memory storage, say), keeping existing ones as they are.
func (n *Node) ensure(ctx context.Context) error {
	storage := jetstream.FileStorage
	if n.cfg.Memory {
		storage = jetstream.MemoryStorage
	}
	_, err := n.js.Stream(ctx, StreamName)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		_, err = n.js.CreateStream(ctx, jetstream.StreamConfig{
			Name:        StreamName,
			Description: "tickerd normalized updates, one subject per symbol",
			Subjects:    []string{SubjectPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardOld,
			MaxAge:      n.cfg.MaxAge,
			MaxBytes:    n.cfg.MaxBytes,
			Storage:     storage,
			Replicas:    n.cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
			err = nil // another node was quicker
		}
	}
	if err != nil {
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			return ErrNoJetStream
		}
		return fmt.Errorf("cluster: stream %s: %w", StreamName, err)
	}
	for _, b := range []jetstream.KeyValueConfig{
		{Bucket: SnapBucket, Description: "tickerd last record per symbol", History: 1, Storage: storage, Replicas: n.cfg.Replicas},
		{Bucket: LeaseBucket, Description: "tickerd snapshot writer lease", History: 1, TTL: leaseTTL, Storage: storage, Replicas: n.cfg.Replicas},
	} {
		if _, err := n.js.KeyValue(ctx, b.Bucket); err == nil {
			continue
		}
		if _, err := n.js.CreateKeyValue(ctx, b); err != nil && !errors.Is(err, jetstream.ErrBucketExists) {
			if _, err2 := n.js.KeyValue(ctx, b.Bucket); err2 != nil {
				return fmt.Errorf("cluster: bucket %s: %w", b.Bucket, err)
			}
		}
	}
	return nil
}

// poke wakes the applier without blocking; wake-ups merge.
func (n *Node) poke() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// Apply publishes u to the cluster; it does not touch the local cache
// (the update comes back through the stream, like everyone else's). The
// ingest time is stamped here when u.TS is zero, so that every node shows
// the same ts. Publishes are acknowledged by the stream: with maxInFlight
// unacknowledged, Apply waits for one (up to stallWait), which slows the feed
// rather than losing updates. While NATS is unreachable updates are
// dropped at once and counted (tickerd_cluster_publish_errors_total): the
// node shows stale values then, and feeds send fresh ones after. It
// reports whether the update was handed to NATS.
func (n *Node) Apply(u *feed.Update) bool {
	if u.Set == 0 || !feed.ValidSymbol(u.Symbol) {
		return false
	}
	if !n.nc.IsConnected() {
		n.m.publishErrors.Inc()
		return false
	}
	ts := u.TS
	if ts == 0 {
		ts = time.Now().UnixMicro()
	}
	// The buffer is the library's until acknowledged: one per update.
	b := appendUpdate(make([]byte, 0, 64+24*u.Set.Len()), u, ts)
	if _, err := n.js.PublishMsgAsync(&nats.Msg{Subject: Subject(u.Symbol), Data: b}, jetstream.WithStallWait(stallWait)); err != nil {
		n.m.publishErrors.Inc()
		n.logPublishError(Subject(u.Symbol), err)
		return false
	}
	n.m.published.Inc()
	return true
}

// maxInFlight bounds the publishes awaiting the stream's acknowledgement;
// stallWait is how long Apply waits for room before it drops an update.
const (
	maxInFlight = 4096
	stallWait   = time.Second
)

// logPublishError logs a failed publish, at most once a second.
func (n *Node) logPublishError(subject string, err error) {
	now := time.Now().UnixNano()
	last := n.lastPubErr.Load()
	if now-last < int64(time.Second) || !n.lastPubErr.CompareAndSwap(last, now) {
		return
	}
	n.log.Warn("cluster publish failed (counted in tickerd_cluster_publish_errors_total; further ones this second not logged)", "subject", subject, "err", err)
}

// Flush waits until everything published so far is stored in the stream
// (acknowledged), or ctx ends.
func (n *Node) Flush(ctx context.Context) error {
	select {
	case <-n.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Source is the cache as the stream server should read it. In Interest
// mode, watching a symbol subscribes this node to it and fetches its
// snapshot; otherwise it is the cache itself.
func (n *Node) Source() *Source { return n.Wrap(n.cfg.Cache) }

// Wrap is Source for another cache that follows the node's (the delayed
// tier's): watching a symbol there makes an Interest node follow it too.
func (n *Node) Wrap(c *conflate.Cache) *Source {
	n.imu.Lock()
	defer n.imu.Unlock()
	if c != n.cfg.Cache {
		n.others = append(n.others, c)
	}
	return &Source{Cache: c, n: n}
}

// watchedLocked reports whether a session watches sym in the node's cache
// or in a wrapped one. n.imu must be held.
func (n *Node) watchedLocked(sym string) bool {
	if e := n.cfg.Cache.Get(sym); e != nil && e.Watchers() > 0 {
		return true
	}
	for _, c := range n.others {
		if e := c.Get(sym); e != nil && e.Watchers() > 0 {
			return true
		}
	}
	return false
}

// Source is a conflate.Cache whose Watch tells the Node which symbols are
// wanted. It has the methods the stream server reads.
type Source struct {
	*conflate.Cache
	n *Node
}

// Watch registers w on sym (conflate.Cache.Watch) and, in Interest mode,
// makes the node consume sym's updates from now on.
func (s *Source) Watch(h *conflate.Watch, sym string, w conflate.Watcher) {
	s.n.Want(sym)
	s.Cache.Watch(h, sym, w)
}

// Get returns sym's entry (conflate.Cache.Get). In Interest mode a symbol
// not yet followed is followed from now on, and Get waits up to a second
// for its snapshot, so that GET /v1/snapshot?symbols=X answers with data
// on any node.
func (s *Source) Get(sym string) *conflate.Entry {
	if s.n.Want(sym) {
		since := s.n.syncs.Load()
		deadline := time.Now().Add(time.Second)
		for s.n.syncs.Load() == since && time.Now().Before(deadline) && s.n.connected.Load() {
			time.Sleep(5 * time.Millisecond)
		}
	}
	return s.Cache.Get(sym)
}

// Want makes an Interest-mode node consume sym's updates, after loading
// its snapshot; a no-op otherwise or once wanted. It reports whether sym
// is newly wanted. It never blocks on I/O.
func (n *Node) Want(sym string) bool {
	if !n.cfg.Interest || !feed.ValidSymbol(sym) {
		return false
	}
	n.imu.Lock()
	if _, ok := n.interest[sym]; ok || len(n.interest) >= maxInterest {
		n.imu.Unlock()
		return false
	}
	n.interest[sym] = time.Now()
	n.wanted = append(n.wanted, sym)
	n.imu.Unlock()
	n.poke()
	return true
}

// maxInterest bounds the symbols one Interest-mode node subscribes to: the
// consumer's filter subjects travel in one request, under NATS's 1 MiB
// payload limit.
const maxInterest = 20_000

// takeWanted returns the symbols wanted since the last call, and the whole
// interest set's size.
func (n *Node) takeWanted() []string {
	n.imu.Lock()
	defer n.imu.Unlock()
	w := n.wanted
	n.wanted = nil
	return w
}

// interestSubjects lists the subjects of every wanted symbol.
func (n *Node) interestSubjects() []string {
	n.imu.Lock()
	defer n.imu.Unlock()
	out := make([]string, 0, len(n.interest))
	for sym := range n.interest {
		out = append(out, Subject(sym))
	}
	return out
}

// Status is a node's view of its cluster membership.
type Status struct {
	Node      string `json:"node"`
	Connected bool   `json:"connected"` // to NATS
	Synced    bool   `json:"synced"`    // snapshot loaded and stream caught up since the last (re)connect
	Leader    bool   `json:"leader"`    // writes the snapshots
	Applied   uint64 `json:"applied"`   // last stream sequence consumed
	Lag       uint64 `json:"lag"`       // stream messages not yet consumed
	Interest  bool   `json:"interest"`
}

// Status reports the node's state, for /readyz.
func (n *Node) Status() Status {
	return Status{
		Node: n.cfg.Name, Connected: n.connected.Load(), Synced: n.synced.Load(), Leader: n.leader.Load(),
		Applied: n.applied.Load(), Lag: n.lag.Load(), Interest: n.cfg.Interest,
	}
}

// Close stops consuming, hands over the snapshot lease and closes the
// NATS connection, flushing what was published. Safe to call twice.
func (n *Node) Close() {
	n.closed.Do(func() {
		n.closing.Store(true)
		n.cancel()
		n.wg.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = n.Flush(ctx) // what the feeds published last
		cancel()
		n.nc.Close()
	})
}
