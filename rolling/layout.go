package rolling

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Naming says how a final file is named after the offset of its first
// record.
type Naming int

const (
	// NamePlain names a file by the plain decimal offset, no padding, no
	// extension: "101". This is the astraea Exporter's convention.
	NamePlain Naming = iota
	// NameKafka names a file as Kafka names a log segment, the offset
	// zero-padded to 20 digits with a ".log" extension:
	// "00000000000000000101.log", so Kafka's kafka-dump-log.sh reads it.
	NameKafka
)

// ParseNaming returns the Naming called s: "offset" or "kafka".
func ParseNaming(s string) (Naming, error) {
	switch s {
	case "offset":
		return NamePlain, nil
	case "kafka":
		return NameKafka, nil
	}
	return 0, fmt.Errorf("unknown naming %q: use offset or kafka", s)
}

// FileName returns the final name of a file whose first record has the given
// offset.
func (n Naming) FileName(firstOffset int64) string {
	if n == NameKafka {
		return fmt.Sprintf("%020d.log", firstOffset)
	}
	return strconv.FormatInt(firstOffset, 10)
}

// ParseFileName returns the first offset a final file's name states, in
// either naming, and false for any other name (in-progress files, stray
// files).
func ParseFileName(name string) (int64, bool) {
	digits := name
	if strings.HasSuffix(name, ".log") {
		digits = strings.TrimSuffix(name, ".log")
		if len(digits) != 20 {
			return 0, false
		}
	} else if len(name) > 1 && name[0] == '0' {
		return 0, false
	}
	if digits == "" || strings.TrimLeft(digits, "0123456789") != "" {
		return 0, false
	}
	off, err := strconv.ParseInt(digits, 10, 64)
	return off, err == nil
}

// InProgressSuffix ends the name of every in-progress file.
const InProgressSuffix = ".inprogress"

// InProgressName returns the hidden name a file has while it is written: a
// dot, the final name, the writing instance's id and InProgressSuffix, for
// example ".101.host-1a2b3c.inprogress". No reader mistakes it for a final
// file and two instances never write the same one.
func InProgressName(finalName, instance string) string {
	return "." + finalName + "." + instance + InProgressSuffix
}

// PartitionDir returns the folder of a partition below root:
// <root>/<topic>/<partition>.
func PartitionDir(root, topic string, partition int32) string {
	return filepath.Join(root, topic, strconv.FormatInt(int64(partition), 10))
}

// ValidTopic reports whether a topic name is one Kafka allows: 1 to 249 of
// [a-zA-Z0-9._-], and not "." or "..". Only such names become folder names.
func ValidTopic(t string) error {
	if t == "" || len(t) > 249 {
		return fmt.Errorf("topic name %q must be 1 to 249 characters long", t)
	}
	if t == "." || t == ".." {
		return fmt.Errorf("topic name %q is not allowed by Kafka", t)
	}
	for _, c := range t { // by character: a byte of UTF-8 would print as mojibake
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("topic name %q has the character %q, which Kafka does not allow in topic names (letters a-z and A-Z, digits, '.', '_' and '-' only)", t, c)
		}
	}
	return nil
}
