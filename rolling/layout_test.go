package rolling

import (
	"strings"
	"testing"
)

// TestValidTopic: Kafka's topic names pass; others are refused naming the
// first character Kafka refuses as typed, not a byte of its UTF-8.
func TestValidTopic(t *testing.T) {
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
