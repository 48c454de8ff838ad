package layout

import (
	"reflect"
	"strings"
	"testing"

	"github.com/kafka-backup/kafka-backup/offsets"
)

func TestFileNames(t *testing.T) {
	for _, n := range []Naming{NamePlain, NameKafka} {
		for _, off := range []int64{0, 101, 1 << 40} {
			name := n.FileName(off)
			if got, ok := ParseFileName(name); !ok || got != off {
				t.Errorf("ParseFileName(%q) = %d, %v; want %d", name, got, ok, off)
			}
			final, inst, ok := ParseInProgressName(InProgressName(name, "host-1a"))
			if !ok || final != name || inst != "host-1a" {
				t.Errorf("in-progress name of %q: %q %q %v", name, final, inst, ok)
			}
			final, inst, ok = ParseUploadName(UploadName(name, "host-1a"))
			if !ok || final != name || inst != "host-1a" {
				t.Errorf("upload name of %q: %q %q %v", name, final, inst, ok)
			}
		}
	}
	for _, bad := range []string{"", "0101", "12a", "0000101.log", ".101", "101.log"} {
		if _, ok := ParseFileName(bad); ok {
			t.Errorf("ParseFileName(%q) accepted", bad)
		}
	}
}

func TestClassify(t *testing.T) {
	for name, want := range map[string]Kind{
		"101":                            KindFinal,
		"00000000000000000101.log":       KindFinal,
		".101.host-1a.inprogress":        KindInProgress,
		".101.host-1a.upload":            KindUpload,
		MarkerName:                       KindMarker,
		MarkerTempName("host-1a"):        KindHidden,
		RecreatedNote:                    KindRecreated,
		"notes.txt":                      KindStray,
		"0101":                           KindStray,
		".x.inprogress":                  KindHidden,
		SnapshotInProgressName("a.json"): KindHidden,
	} {
		if got := Classify(name); got != want {
			t.Errorf("Classify(%q) = %s, want %s", name, got, want)
		}
	}
}

func TestRangeLines(t *testing.T) {
	rs := []offsets.Range{{First: 101, Last: 150}, {First: 152, Last: 200}}
	line := FormatRangeLine("101", rs)
	if line != "101 101-150,152-200\n" {
		t.Fatalf("FormatRangeLine = %q", line)
	}
	data := JournalHeader("ftp://u@h:21/b") + line + "bad 5-1\n" + FormatRangeLine("300", []offsets.Range{{First: 300, Last: 300}}) + "101 101-101\n"
	got := ParseRanges([]byte(data))
	want := map[string][]offsets.Range{"101": {{First: 101, Last: 101}}, "300": {{First: 300, Last: 300}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseRanges = %v, want %v (a later line for a name wins, bad lines and the header are skipped)", got, want)
	}
}

func TestValidTopic(t *testing.T) {
	for _, ok := range []string{"a", "my.dotted_topic-1"} {
		if err := ValidTopic(ok); err != nil {
			t.Errorf("ValidTopic(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "é", MetadataDir} {
		if ValidTopic(bad) == nil {
			t.Errorf("ValidTopic(%q) accepted", bad)
		}
	}
}

func TestValidTopicCases(t *testing.T) {
	for _, ok := range []string{"orders", "my.topic_v2-x", strings.Repeat("a", 249)} {
		if err := ValidTopic(ok); err != nil {
			t.Errorf("ValidTopic(%q): %v", ok, err)
		}
	}
	for bad, want := range map[string]string{
		"тема":                   `topic name "тема" has the character 'т'`,
		"a b":                    `topic name "a b" has the character ' '`,
		"a/b":                    `has the character '/'`,
		"":                       "must be 1 to 249 characters long",
		"..":                     "not allowed by Kafka",
		strings.Repeat("a", 250): "must be 1 to 249 characters long",
	} {
		err := ValidTopic(bad)
		if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "Ñ") {
			t.Errorf("ValidTopic(%q): %v; want it to say %s", bad, err, want)
		}
	}
}
