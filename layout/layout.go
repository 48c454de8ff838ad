// Package layout is the backup tree: the names of topic and partition
// folders and of files in them, final, in progress and being uploaded, the
// FTP destination's range marker and its spool's upload journal, the note
// of a recreated topic, and the metadata folder. It is the contract with
// users that docs/FORMAT.md describes; the writers, the destinations and the
// read side all take the names from here. A leaf: it imports only offsets.
package layout

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kafka-backup/kafka-backup/offsets"
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

// ParseInProgressName splits ".<final>.<instance>.inprogress".
func ParseInProgressName(name string) (final, instance string, ok bool) {
	return parseHidden(name, InProgressSuffix)
}

// UploadSuffix ends the name of every file an FTP upload is writing on the
// server.
const UploadSuffix = ".upload"

// UploadName returns the hidden name a file has on the FTP server while it
// is uploaded: ".<final>.<instance>.upload", renamed to the final name once
// complete.
func UploadName(finalName, instance string) string {
	return "." + finalName + "." + instance + UploadSuffix
}

// ParseUploadName splits ".<final>.<instance>.upload".
func ParseUploadName(name string) (final, instance string, ok bool) {
	return parseHidden(name, UploadSuffix)
}

// parseHidden splits ".<final>.<instance><suffix>".
func parseHidden(name, suffix string) (final, instance string, ok bool) {
	if !strings.HasPrefix(name, ".") || !strings.HasSuffix(name, suffix) {
		return "", "", false
	}
	rest := strings.TrimSuffix(name[1:], suffix)
	// The final name is digits, or 20 digits and ".log"; the instance has no
	// dots.
	i := strings.LastIndexByte(rest, '.')
	if i < 0 {
		return "", "", false
	}
	final, instance = rest[:i], rest[i+1:]
	if _, ok := ParseFileName(final); !ok || instance == "" {
		return "", "", false
	}
	return final, instance, true
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

// MarkerName is the name of the file, in each remote partition folder of
// the FTP destination, that lists the offsets every final file in it
// covers, one line each: "<name> <first>-<last>[,<first>-<last>…]" (a
// file's batches, contiguous ones merged; see FormatRangeLine). It lets a
// restarted writer skip records already uploaded without downloading the
// files. It is neither a final file nor a leftover.
const MarkerName = ".kafka-backup.ranges"

// MarkerTempName is the name an instance writes a new marker under before
// renaming it to MarkerName.
func MarkerTempName(instance string) string { return TempName(MarkerName, instance) }

// TempName is the name an instance writes a new version of the note name
// (MarkerName, PrunedNote) under before renaming it over the old one.
func TempName(name, instance string) string { return name + "." + instance + ".tmp" }

// JournalName is the name of the file, in each spool partition folder of the
// FTP destination, that lists the files this spool uploaded, in the
// marker's format, after a first line naming the destination
// (JournalHeader). It is a hint, never the truth: what counts as backed up
// is what the server holds.
const JournalName = ".uploaded.ranges"

// JournalTempName is the name a journal is rewritten under before it is
// renamed to JournalName.
const JournalTempName = JournalName + ".tmp"

// JournalHeaderPrefix starts the first line of a journal; the destination's
// URL (never the password) follows.
const JournalHeaderPrefix = "# kafka-backup upload journal of "

// JournalHeader returns the first line of a journal of the destination url.
func JournalHeader(url string) string { return JournalHeaderPrefix + url + "\n" }

// SnapshotInProgressName is the hidden name a metadata snapshot file has
// while it is written: ".<name>.inprogress" (its name holds the instance
// already).
func SnapshotInProgressName(name string) string { return "." + name + InProgressSuffix }

// RecreatedNote is the file a writer leaves in a partition folder it
// refuses because the topic was deleted and recreated: records arrived at
// offsets the folder's files hold, with other contents. It says what was
// found and what to do.
const RecreatedNote = ".kafka-backup.recreated"

// MetadataDir is the folder below the backup root that holds the metadata
// snapshots. The "@" keeps it apart from topic folders: Kafka topic names
// cannot hold it.
const MetadataDir = "@metadata"

// FormatRangeLine formats one marker or journal line: the name, a space and
// the ranges, "101 101-150,152-200\n".
func FormatRangeLine(name string, ranges []offsets.Range) string {
	var b strings.Builder
	b.WriteString(name)
	for i, r := range ranges {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d-%d", r.First, r.Last)
	}
	b.WriteByte('\n')
	return b.String()
}

// ParseRanges parses a marker (MarkerName) or journal (JournalName): the
// offset ranges each file holds, by file name. Lines it cannot read, and
// comment lines (starting with #), are skipped; a later line for a name
// wins.
func ParseRanges(data []byte) map[string][]offsets.Range {
	out := map[string][]offsets.Range{}
	for _, line := range strings.Split(string(data), "\n") {
		name, list, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		var rs []offsets.Range
		for _, part := range strings.Split(list, ",") {
			var r offsets.Range
			if n, _ := fmt.Sscanf(part, "%d-%d", &r.First, &r.Last); n != 2 || r.Last < r.First {
				rs = nil
				break
			}
			rs = append(rs, r)
		}
		if len(rs) > 0 {
			out[name] = rs
		}
	}
	return out
}

// Kind is what a name in a partition folder is (Classify).
type Kind string

// The kinds of names in a partition folder.
const (
	KindFinal      Kind = "final"      // a final file: its first offset's name
	KindInProgress Kind = "inprogress" // a file being written, or left by a crashed writer
	KindUpload     Kind = "upload"     // an FTP upload in progress or abandoned
	KindMarker     Kind = "marker"     // the FTP destination's MarkerName
	KindRecreated  Kind = "recreated"  // RecreatedNote
	KindPruned     Kind = "pruned"     // PrunedNote
	KindHidden     Kind = "other"      // another hidden name (a marker's temporary name, …)
	KindStray      Kind = "stray"      // anything else
)

// Classify says what the file name is in a partition folder.
func Classify(name string) Kind {
	if _, ok := ParseFileName(name); ok {
		return KindFinal
	}
	switch {
	case name == MarkerName:
		return KindMarker
	case name == RecreatedNote:
		return KindRecreated
	case name == PrunedNote:
		return KindPruned
	}
	if _, _, ok := ParseInProgressName(name); ok {
		return KindInProgress
	}
	if strings.HasPrefix(name, ".") && strings.HasSuffix(name, UploadSuffix) {
		return KindUpload
	}
	if strings.HasPrefix(name, ".") {
		return KindHidden
	}
	return KindStray
}
