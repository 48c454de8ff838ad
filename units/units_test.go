package units

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
)

// unitBits is every unit's value in bits, written out independently of the
// package's own table.
var unitBits = map[string]float64{
	"Bit": 1, "Kb": 1e3, "Kib": 1024, "Mb": 1e6, "Mib": 1 << 20, "Gb": 1e9, "Gib": 1 << 30, "Tb": 1e12, "Tib": 1 << 40,
	"Byte": 8, "B": 8, "KB": 8e3, "KiB": 8 * 1024, "MB": 8e6, "MiB": 8 << 20, "GB": 8e9, "GiB": 8 << 30, "TB": 8e12, "TiB": 8 << 40,
}

func TestSizeUnitNamesCoverTable(t *testing.T) {
	if len(SizeUnitNames) != len(unitBits) {
		t.Fatalf("SizeUnitNames has %d units, want %d: %v", len(SizeUnitNames), len(unitBits), SizeUnitNames)
	}
	seen := map[string]bool{}
	for _, u := range SizeUnitNames {
		if seen[u] {
			t.Errorf("unit %q listed twice", u)
		}
		seen[u] = true
		if _, ok := unitBits[u]; !ok {
			t.Errorf("unexpected unit %q", u)
		}
	}
}

func TestParseSizeEveryUnit(t *testing.T) {
	for _, u := range SizeUnitNames {
		// 8 of anything is at least one byte and always a whole number of
		// bytes.
		for _, n := range []float64{8, 16, 1000} {
			in := fmt.Sprintf("%g%s", n, u)
			want := int64(n * unitBits[u] / 8)
			got, err := ParseSize(in)
			if err != nil {
				t.Errorf("ParseSize(%q): %v", in, err)
				continue
			}
			if got != want {
				t.Errorf("ParseSize(%q) = %d, want %d", in, got, want)
			}
			// A space between number and unit is allowed.
			in = fmt.Sprintf("%g %s", n, u)
			if got, err := ParseSize(in); err != nil || got != want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
			}
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"8Mb", 1_000_000},
		{"10MB", 10_000_000},
		{"10Mb", 1_250_000},
		{"1KiB", 1024},
		{"1Kib", 128},
		{"1KB", 1000},
		{"1Kb", 125},
		{"1048576", 1048576},
		{"1", 1},
		{"10 MB", 10_000_000},
		{"10\tMB", 10_000_000},
		{"  10MB  ", 10_000_000},
		{"1.5KiB", 1536},
		{"1.5 KiB", 1536},
		{"0.5MB", 500_000},
		{"1.9", 1}, // rounded down to whole bytes
		{"12Bit", 1},
		{"8Bit", 1},
		{"16Bit", 2},
		{"1Byte", 1},
		{"1B", 1},
		{"2GiB", 2 << 30},
		{"3TiB", 3 << 40},
		{"1TB", 1e12},
		{"007MB", 7_000_000},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if err != nil {
			t.Errorf("ParseSize(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

func TestParseSizeRejects(t *testing.T) {
	for _, in := range []string{
		"", " ", "-1MB", "-1", "0", "0MB", "0.0", "0.0KiB", "10mb", "10kb", "10XB", "MB", "10M", "1e3",
		"1.", ".5MB", "10 M B", "10MBB", "+10MB", "1,000", "10 MB x", "0x10",
		"4Bit", "7Bit", "0.5B", "0.1Byte", // less than one byte
		"99999999999999999999TiB", // too large
	} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestParseSizeErrorNamesUnits(t *testing.T) {
	_, err := ParseSize("10XB")
	if err == nil || !strings.Contains(err.Error(), "KiB") || !strings.Contains(err.Error(), `"XB"`) {
		t.Fatalf("error %v should name the bad unit and list the good ones", err)
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"3s", 3 * time.Second},
		{"90s", 90 * time.Second},
		{"1h30m", 90 * time.Minute},
		{"1m30s", 90 * time.Second},
		{"250ms", 250 * time.Millisecond},
		{"1ns", 1},
		{"1us", time.Microsecond},
		{"1µs", time.Microsecond},
		{".5s", 500 * time.Millisecond},
		{"1day", 24 * time.Hour},
		{"1d", 24 * time.Hour},
		{"2 days", 48 * time.Hour},
		{"2days", 48 * time.Hour},
		{"1.5days", 36 * time.Hour},
		{"3", 3 * time.Second},
		{"0.5", 500 * time.Millisecond},
		{" 3 ", 3 * time.Second},
		{"0h1m", time.Minute},
		{"+3s", 3 * time.Second},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if err != nil {
			t.Errorf("ParseDuration(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestParseDurationRejects(t *testing.T) {
	for _, in := range []string{
		"", "0s", "0", "0.0", "0days", "0h0m", "-3s", "-3", "-1day", "abc", "3 weeks", "3w", "1Day", "3 s", "1h 30m",
		// Not the documented grammar for a number of seconds.
		"+3", "1e3", "3.", ".5", "1_0", "0x1p4", "Inf", "NaN", "-Inf",
		"0.5ns",                        // less than a nanosecond
		"99999999999", "999999999days", // too large for a time.Duration
		"9999999999h",
	} {
		if got, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", in, got)
		}
	}
}

// lintErrors runs a lint mapping on v and returns the messages it gives. A
// mapping that matches no case leaves the value as it is: no messages.
func lintErrors(t *testing.T, exe *bloblang.Executor, v any) []string {
	t.Helper()
	res, err := exe.Query(v)
	if err != nil {
		t.Fatalf("lint on %q: %v", v, err)
	}
	arr, ok := res.([]any)
	if !ok {
		return nil
	}
	var out []string
	for _, e := range arr {
		s, ok := e.(string)
		if !ok {
			t.Fatalf("lint on %q gave %#v, want strings", v, e)
		}
		out = append(out, s)
	}
	return out
}

func TestSizeLintRuleAgreesWithParseSize(t *testing.T) {
	exe, err := bloblang.Parse(SizeLintRule("size", 1))
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{
		"", " ", "-1MB", "0", "0MB", "0.0KiB", "10mb", "10XB", "MB", "1e3", "1.", ".5MB", "+10MB", "10MBB",
		"10 M B", "1,000", "abc", "10 MB", "10\tMB", " 10MB ", "1048576", "1", "1.5KiB", "8Mb", "10MB", "1KiB",
		"0.5MB", "007MB", "\u00a010MB", "10\u00a0MB", "4Bit", "7Bit", "8Bit", "0.5B", "0.1Byte", "1B",
	}
	for _, u := range SizeUnitNames {
		inputs = append(inputs, "8"+u, "8 "+u, "12.5"+u, "0"+u, "-1"+u, strings.ToLower(u)+"1", "8"+strings.ToUpper(u)+"x")
	}
	for _, in := range inputs {
		n, perr := ParseSize(in)
		msgs := lintErrors(t, exe, in)
		if (perr == nil) != (len(msgs) == 0) {
			t.Errorf("%q: ParseSize = %d, %v; lint says %q", in, n, perr, msgs)
		}
		for _, m := range msgs {
			if !strings.HasPrefix(m, "size: ") {
				t.Errorf("%q: lint message %q does not name the field", in, m)
			}
		}
	}
	// A bare number as YAML gives it, not a string.
	if msgs := lintErrors(t, exe, int64(1048576)); len(msgs) != 0 {
		t.Errorf("lint rejects the number 1048576: %q", msgs)
	}
	// Absurdly large sizes pass the lint but ParseSize rejects them when
	// the pipeline starts.
	for _, in := range []string{"99999999999999999999TiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepts it", in)
		}
	}
}

func TestDurationLintRuleAgreesWithParseDuration(t *testing.T) {
	exe, err := bloblang.Parse(DurationLintRule("roll_duration"))
	if err != nil {
		t.Fatal(err)
	}
	inputs := []string{
		"3s", "90s", "1h30m", "1m30s", "250ms", "1ns", "1us", "1µs", "1μs", ".5s", "1.s", "1day", "1d", "2 days",
		"2days", "1.5days", "3", "0.5", " 3 ", "0h1m", "+3s", "1h0m0s",
		"", "0s", "0", "0.0", "0days", "0h0m", "-3s", "-3", "-1day", "abc", "3 weeks", "3w", "1Day", "3 s",
		"1h 30m", "+3", "1e3", "3.", ".5", "1_0", "0x1p4", "Inf", "NaN", "-Inf", ".5days", "1dayss", "+0s",
		"\u00a03s",
	}
	for _, in := range inputs {
		d, perr := ParseDuration(in)
		msgs := lintErrors(t, exe, in)
		if (perr == nil) != (len(msgs) == 0) {
			t.Errorf("%q: ParseDuration = %v, %v; lint says %q", in, d, perr, msgs)
		}
		for _, m := range msgs {
			if !strings.HasPrefix(m, "roll_duration: ") {
				t.Errorf("%q: lint message %q does not name the field", in, m)
			}
		}
	}
	// Durations below a nanosecond or beyond a time.Duration pass the lint,
	// which computes no units, but ParseDuration rejects them.
	for _, in := range []string{"0.5ns", "99999999999", "999999999days", "9999999999h"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepts it", in)
		}
	}
}

func TestParseDurationLargestValues(t *testing.T) {
	// Just below the limit still parses, exactly.
	d, err := ParseDuration("106751days")
	if err != nil || d != 106751*24*time.Hour {
		t.Fatalf("ParseDuration(106751days) = %v, %v", d, err)
	}
	if d, err := ParseDuration(fmt.Sprint(int64(math.MaxInt64/int64(time.Second)) + 1)); err == nil {
		t.Fatalf("one second past the limit parses as %v", d)
	}
}
