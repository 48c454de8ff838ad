// Package units parses the size and duration strings of kafka-backup's
// configuration, with the units the astraea Exporter accepted.
//
// Sizes are a number followed by a unit. Upper-case B is bytes and lower-case
// b is bits, so "10MB" is ten million bytes and "10Mb" is ten million bits.
// Decimal units (KB, MB, …) step by 1000 and binary units (KiB, MiB, …) by
// 1024. A bare number is a number of bytes.
//
// Durations are Go durations ("90s", "1h30m"), a number of days ("1day",
// "2 days") or a bare number of seconds ("3").
package units

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// sizeUnits maps each accepted size unit to its value in bits.
var sizeUnits = map[string]float64{
	"Bit": 1, "Kb": 1e3, "Mb": 1e6, "Gb": 1e9, "Tb": 1e12,
	"Kib": 1 << 10, "Mib": 1 << 20, "Gib": 1 << 30, "Tib": 1 << 40,
	"Byte": 8, "B": 8, "KB": 8e3, "MB": 8e6, "GB": 8e9, "TB": 8e12,
	"KiB": 8 << 10, "MiB": 8 << 20, "GiB": 8 << 30, "TiB": 8 << 40,
}

// SizeUnitNames lists the accepted size units, smallest first within bits
// and then bytes, for error messages and documentation.
var SizeUnitNames = []string{
	"Bit", "Kb", "Kib", "Mb", "Mib", "Gb", "Gib", "Tb", "Tib",
	"Byte", "B", "KB", "KiB", "MB", "MiB", "GB", "GiB", "TB", "TiB",
}

var sizeRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)$`)

// ParseSize parses a size such as "100MB", "64KiB", "8Mb" or "1048576" and
// returns it in bytes. A size in bits is rounded down to whole bytes. The
// result is always greater than zero.
func ParseSize(s string) (int64, error) {
	m := sizeRe.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, fmt.Errorf("cannot parse size %q: write a number followed by a unit (%s), for example 100MB", s, strings.Join(SizeUnitNames, ", "))
	}
	n, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, fmt.Errorf("cannot parse size %q: %w", s, err)
	}
	bits := 8.0
	if m[2] != "" {
		u, ok := sizeUnits[m[2]]
		if !ok {
			return 0, fmt.Errorf("cannot parse size %q: unknown unit %q: use one of %s (upper-case B is bytes, lower-case b is bits)", s, m[2], strings.Join(SizeUnitNames, ", "))
		}
		bits = u
	}
	b := math.Floor(n * bits / 8)
	if b < 1 {
		return 0, fmt.Errorf("size %q is less than one byte: give a size greater than zero", s)
	}
	if b > math.MaxInt64/2 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(b), nil
}

var daysRe = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)\s*(?:d|day|days)$`)

var secondsRe = regexp.MustCompile(`^[0-9]+(?:\.[0-9]+)?$`)

// ParseDuration parses a duration such as "3s", "1h30m", "1day", "2 days" or
// "3" (seconds). The result is always greater than zero.
func ParseDuration(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	var d time.Duration
	if m := daysRe.FindStringSubmatch(t); m != nil {
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return 0, fmt.Errorf("cannot parse duration %q: %w", s, err)
		}
		if n*float64(24*time.Hour) >= math.MaxInt64 {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		d = time.Duration(n * float64(24*time.Hour))
	} else if n, err := strconv.ParseFloat(t, 64); err == nil && secondsRe.MatchString(t) {
		if n*float64(time.Second) >= math.MaxInt64 {
			return 0, fmt.Errorf("duration %q is too large", s)
		}
		d = time.Duration(n * float64(time.Second))
	} else if d, err = time.ParseDuration(t); err != nil {
		return 0, fmt.Errorf("cannot parse duration %q: write a Go duration (3s, 1m30s, 2h), a number of days (1day, 2days) or a number of seconds", s)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q is not positive: give a duration greater than zero", s)
	}
	return d, nil
}

// SizeLintRule returns a Bloblang lint rule that accepts exactly the strings
// ParseSize accepts that come to at least minBytes, so `kafka-backup lint`
// rejects a bad size with the field's name before anything runs.
func SizeLintRule(field string, minBytes int64) string {
	bits := make([]string, 0, len(SizeUnitNames))
	for _, u := range SizeUnitNames {
		bits = append(bits, fmt.Sprintf("%q: %s", u, strconv.FormatFloat(sizeUnits[u], 'f', -1, 64)))
	}
	return fmt.Sprintf(`let m = this.string().trim().re_find_all_submatch("^([0-9]+(?:\\.[0-9]+)?)\\s*([A-Za-z]*)$")
let bits = {%s}
let unit = if $m.length() > 0 { $m.index(0).index(2) } else { "" }
root = if $m.length() == 0 || ($unit != "" && !$bits.keys().contains($unit)) {
  ["%s: cannot parse %%q as a size: write a number followed by a unit (%s), for example 100MB".format(this)]
} else if ($m.index(0).index(1).number() * (if $unit == "" { 8 } else { $bits.get($unit) }) / 8).floor() < %d {
  ["%s: %%q is less than %d bytes".format(this)]
}`, strings.Join(bits, ", "), field, strings.Join(SizeUnitNames, ", "), minBytes, field, minBytes)
}

// DurationLintRule returns a Bloblang lint rule that accepts the strings
// ParseDuration accepts.
func DurationLintRule(field string) string {
	return fmt.Sprintf(`root = match this.string().trim() {
  this.re_match("^([0-9]+(\\.[0-9]+)?)$|^[0-9]+(\\.[0-9]+)?\\s*(d|day|days)$|^\\+?(([0-9]+(\\.[0-9]*)?|\\.[0-9]+)(ns|us|µs|μs|ms|s|m|h))+$") == false => ["%s: cannot parse %%q as a duration: write a Go duration (3s, 1m30s, 2h), a number of days (1day) or a number of seconds".format(this)],
  this.re_replace_all("[^0-9]", "").re_replace_all("^0*$", "") == "" => ["%s: %%q is not greater than zero".format(this)],
}`, field, field)
}
