package metadata

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Logger is where a Snapshotter logs; *service.Logger is one.
type Logger interface {
	Infof(format string, args ...any)
	Warnf(format string, args ...any)
}

// Config configures a Snapshotter.
type Config struct {
	// ClientOpts connect to the source cluster: seed brokers, TLS, SASL.
	ClientOpts []kgo.Opt
	// Interval is the time between snapshots; DefaultInterval when 0.
	Interval time.Duration
	// Groups select the consumer groups whose offsets are recorded.
	Groups []*regexp.Regexp
	// TopicConfigs records each topic's configs.
	TopicConfigs bool
	// Instance names the writer in file names and snapshots.
	Instance string
	// Store keeps the files.
	Store Store
	// Timeout bounds one snapshot, capture and store; the smaller of
	// Interval and 30s when 0.
	Timeout time.Duration
	// Log gets a line per failure and per first success; nothing when nil.
	Log Logger
	// Failed is called once per snapshot that failed or holds errors (the
	// kafka_backup_metadata_errors metric); Taken once per snapshot stored
	// (kafka_backup_metadata_snapshots). Either may be nil.
	Failed, Taken func()
}

// DefaultInterval is the time between snapshots when Config.Interval is 0.
const DefaultInterval = time.Minute

// Snapshotter takes snapshots of the topics a kafka_backup output writes:
// as soon as it has written its first records, when it first writes a
// topic, every Interval, and at Close. Nothing it does blocks or fails the
// writes: Seen is a map look-up, and every failure is logged and counted.
type Snapshotter struct {
	cfg Config
	adm *kadm.Client
	cl  *kgo.Client

	known   sync.Map // topic → true: Seen's look-up without a lock
	mu      sync.Mutex
	topics  map[string]bool
	fresh   chan struct{} // a topic was first seen
	stop    chan struct{}
	done    chan struct{}
	once    sync.Once
	final   context.Context // Close's context, for the last snapshot
	taken   int
	started bool
	failed  bool // the last attempt failed: the next success is logged
}

// New returns a Snapshotter; Start starts it. It does not connect yet.
func New(cfg Config) (*Snapshotter, error) {
	if cfg.Store == nil {
		return nil, errors.New("metadata: no store")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = min(cfg.Interval, 30*time.Second)
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.ClientID("kafka-backup-metadata")}, cfg.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return &Snapshotter{cfg: cfg, cl: cl, adm: kadm.NewClient(cl), topics: map[string]bool{},
		fresh: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}, nil
}

// Seen records that the output wrote (or skipped) records of topic. It is
// called on the write path: a look-up, and a signal the first time.
func (s *Snapshotter) Seen(topic string) {
	if _, known := s.known.Load(topic); known {
		return
	}
	s.mu.Lock()
	known := s.topics[topic]
	if !known {
		s.topics[topic] = true
	}
	s.mu.Unlock()
	s.known.Store(topic, true)
	if !known {
		select {
		case s.fresh <- struct{}{}:
		default:
		}
	}
}

// Topics returns the topics seen, sorted.
func (s *Snapshotter) Topics() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.topics))
	for t := range s.topics {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Start starts taking snapshots in the background.
func (s *Snapshotter) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started {
		s.started = true
		go s.loop()
	}
}

// shutdownTimeout bounds the last snapshot, so that an unreachable cluster
// delays the output's shutdown little.
const shutdownTimeout = 10 * time.Second

// freshDelay gathers the topics first seen together into one snapshot.
const freshDelay = 500 * time.Millisecond

func (s *Snapshotter) loop() {
	defer close(s.done)
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			s.take(s.final, "shutdown")
			return
		case <-tick.C:
			s.take(context.Background(), "interval")
		case <-s.fresh:
			select {
			case <-s.stop:
				s.take(s.final, "shutdown")
				return
			case <-time.After(freshDelay):
			}
			reason := "topic"
			if s.taken == 0 {
				reason = "start"
			}
			s.take(context.Background(), reason)
		}
	}
}

// take takes and stores one snapshot, when any topic was written.
func (s *Snapshotter) take(ctx context.Context, reason string) {
	topics := s.Topics()
	if len(topics) == 0 {
		return
	}
	timeout := s.cfg.Timeout
	if reason == "shutdown" {
		timeout = min(timeout, shutdownTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	snap, err := Capture(ctx, s.adm, CaptureOptions{Topics: topics, Groups: s.cfg.Groups, TopicConfigs: s.cfg.TopicConfigs})
	if err == nil {
		snap.Reason, snap.Instance = reason, s.cfg.Instance
		var data []byte
		if data, err = snap.Encode(); err == nil {
			err = s.cfg.Store.Put(ctx, Name(snap.Time, s.cfg.Instance), data)
		}
	}
	if err != nil {
		s.failed = true
		s.count(s.cfg.Failed)
		s.logf(true, "kafka_backup metadata: %s snapshot of topics %s not taken (the backup of records goes on): %v", reason, strings.Join(topics, ", "), err)
		return
	}
	s.taken++
	s.count(s.cfg.Taken)
	if len(snap.Errors) > 0 {
		s.count(s.cfg.Failed)
		s.logf(true, "kafka_backup metadata: %s snapshot %s stored without: %s", reason, Name(snap.Time, s.cfg.Instance), strings.Join(snap.Errors, "; "))
		return
	}
	if s.taken == 1 || s.failed {
		s.logf(false, "kafka_backup metadata: %s snapshot %s stored (%d topics, %d consumer groups, %dms); then every %v", reason,
			Name(snap.Time, s.cfg.Instance), len(snap.Topics), len(snap.Groups), snap.TookMillis, s.cfg.Interval)
	}
	s.failed = false
}

func (s *Snapshotter) count(fn func()) {
	if fn != nil {
		fn()
	}
}

func (s *Snapshotter) logf(warn bool, format string, args ...any) {
	switch {
	case s.cfg.Log == nil:
	case warn:
		s.cfg.Log.Warnf(format, args...)
	default:
		s.cfg.Log.Infof(format, args...)
	}
}

// Close takes the last snapshot, bounded by ctx, and stops. Without Start
// it only closes the client.
func (s *Snapshotter) Close(ctx context.Context) {
	s.once.Do(func() {
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		s.final = ctx
		close(s.stop)
		if started {
			select {
			case <-s.done:
			case <-ctx.Done():
			}
		}
		s.cl.Close()
	})
}
