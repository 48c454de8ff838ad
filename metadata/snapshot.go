// Package metadata is the cluster state a kafka-backup tree keeps beside the
// records: snapshots of the backed-up topics (partition count, replication
// factor, non-default configs) and of the committed offsets of consumer
// groups on them, taken by the kafka_backup output (Snapshotter) and read
// by restore, which creates topics with them and translates the groups'
// offsets to the offsets the restored records get (OffsetMap).
//
// Snapshots are JSON files in the folder layout.MetadataDir below the backup root, one
// per snapshot time, named by Name; docs/FORMAT.md specifies them.
package metadata

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Format is the version of the snapshot format this package writes; a
// reader refuses a snapshot of a higher version.
const Format = 1

// Suffix ends every snapshot file name.
const Suffix = ".json"

// timeLayout is the time part of a snapshot file name: UTC, sortable, no
// colons (which some file systems and FTP servers refuse).
const timeLayout = "20060102T150405.000Z"

// Snapshot is the state of the backed-up topics and of the consumer groups
// on them at one time.
type Snapshot struct {
	// Format is the format version, Format when written by this package.
	Format int `json:"format"`
	// Time is when the capture started.
	Time time.Time `json:"time"`
	// TookMillis is how long the capture took, in milliseconds: the
	// committed offsets were read between Time and Time + TookMillis.
	TookMillis int64 `json:"took_ms"`
	// Reason is why it was taken: "start", "interval", "topic" (a topic was
	// first written) or "shutdown".
	Reason string `json:"reason"`
	// Instance is the kafka_backup instance that took it.
	Instance string `json:"instance"`
	// ClusterID is the source cluster's id, when the cluster gives one.
	ClusterID string `json:"cluster_id,omitempty"`
	// Topics are the topics the instance had written, by name.
	Topics []Topic `json:"topics"`
	// Groups are the consumer groups that match the configured expressions
	// and have committed offsets on Topics, by name.
	Groups []Group `json:"groups"`
	// Errors are what could not be read (a topic's configs, a group's
	// offsets); the rest of the snapshot holds.
	Errors []string `json:"errors,omitempty"`
}

// Topic is one topic of a snapshot.
type Topic struct {
	Name              string `json:"name"`
	Partitions        int32  `json:"partitions"`
	ReplicationFactor int16  `json:"replication_factor"`
	// Configs are the topic's configs set on the topic itself (not broker
	// or cluster defaults), sensitive ones left out. Nil when topic_configs
	// is off or they could not be read (ConfigsRead false).
	Configs map[string]string `json:"configs,omitempty"`
	// ConfigsRead says Configs were read: an empty map is then a topic
	// with every config at its default.
	ConfigsRead bool `json:"configs_read"`
}

// Group is the committed offsets of one consumer group.
type Group struct {
	Name string `json:"name"`
	// State is the group's state when listed (Stable, Empty…), when the
	// cluster says.
	State   string   `json:"state,omitempty"`
	Offsets []Offset `json:"offsets"`
}

// Offset is a group's committed offset of one partition: the offset of the
// next record the group would consume.
type Offset struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	Metadata  string `json:"metadata,omitempty"`
}

// Name returns the file name of the snapshot taken at t by instance:
// "<UTC time>.<instance>.json", e.g. 20240501T120000.000Z.backup-0-1a2b3c4d.json.
func Name(t time.Time, instance string) string {
	return t.UTC().Format(timeLayout) + "." + instance + Suffix
}

// ParseName returns the time a snapshot file name states, and false for a
// name that is not a snapshot's (hidden files, anything else).
func ParseName(name string) (time.Time, bool) {
	if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, Suffix) || len(name) < len(timeLayout)+1+len(Suffix) {
		return time.Time{}, false
	}
	t, err := time.Parse(timeLayout, name[:len(timeLayout)])
	if err != nil || name[len(timeLayout)] != '.' {
		return time.Time{}, false
	}
	return t, true
}

// Encode returns the snapshot as indented JSON, topics and groups sorted.
func (s *Snapshot) Encode() ([]byte, error) {
	sort.Slice(s.Topics, func(i, j int) bool { return s.Topics[i].Name < s.Topics[j].Name })
	sort.Slice(s.Groups, func(i, j int) bool { return s.Groups[i].Name < s.Groups[j].Name })
	for _, g := range s.Groups {
		sort.Slice(g.Offsets, func(i, j int) bool {
			a, b := g.Offsets[i], g.Offsets[j]
			return a.Topic < b.Topic || a.Topic == b.Topic && a.Partition < b.Partition
		})
	}
	if s.Topics == nil {
		s.Topics = []Topic{}
	}
	if s.Groups == nil {
		s.Groups = []Group{}
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Decode parses a snapshot file and checks what a reader relies on.
func Decode(data []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("not a snapshot: %w", err)
	}
	switch {
	case s.Format < 1:
		return nil, errors.New("not a snapshot: no format version")
	case s.Format > Format:
		return nil, fmt.Errorf("snapshot format %d is newer than this kafka-backup reads (%d): use a newer kafka-backup", s.Format, Format)
	case s.Time.IsZero():
		return nil, errors.New("snapshot without a time")
	}
	for _, t := range s.Topics {
		if t.Name == "" || t.Partitions < 0 {
			return nil, fmt.Errorf("snapshot topic %q with %d partitions: not valid", t.Name, t.Partitions)
		}
	}
	return &s, nil
}

// Topic returns the snapshot's entry for a topic, or nil.
func (s *Snapshot) Topic(name string) *Topic {
	for i := range s.Topics {
		if s.Topics[i].Name == name {
			return &s.Topics[i]
		}
	}
	return nil
}

// Stored is a snapshot read from a backup tree, with its file name.
type Stored struct {
	Name string
	*Snapshot
}

// Latest returns, among snaps, the latest snapshot (by Time) that holds
// topic and was taken at or before until (any time when until is zero), or
// nil.
func Latest(snaps []Stored, topic string, until time.Time) *Stored {
	var best *Stored
	for i := range snaps {
		s := &snaps[i]
		if s.Snapshot == nil || s.Topic(topic) == nil {
			continue
		}
		if !until.IsZero() && s.Time.After(until) {
			continue
		}
		if best == nil || s.Time.After(best.Time) || s.Time.Equal(best.Time) && s.Name > best.Name {
			best = s
		}
	}
	return best
}
