package restore

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// Kafka says how to connect to the target cluster beyond its brokers: TLS
// and SASL.
type Kafka struct {
	TLS           bool   // connect with TLS
	TLSCAFile     string // PEM certificates trusted on top of the system's
	TLSSkipVerify bool   // accept any certificate (tests only)
	TLSServerName string // name the brokers' certificates hold; each broker's host when empty

	SASLMechanism string // PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; none when empty
	SASLUser      string
	SASLPassword  string
}

// Opts returns the franz-go options for k.
func (k Kafka) Opts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if k.TLS || k.TLSCAFile != "" || k.TLSSkipVerify || k.TLSServerName != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.TLSSkipVerify}
		if k.TLSCAFile != "" {
			pem, err := os.ReadFile(k.TLSCAFile)
			if err != nil {
				return nil, fmt.Errorf("Kafka TLS CA file: %w", err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("Kafka TLS CA file %s: no PEM certificate in it", k.TLSCAFile)
			}
			tc.RootCAs = pool
		}
		// With no ServerName, franz-go checks each broker's host name.
		tc.ServerName = k.TLSServerName
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch m := strings.ToUpper(k.SASLMechanism); m {
	case "":
		if k.SASLUser != "" || k.SASLPassword != "" {
			return nil, fmt.Errorf("a SASL user or password without a SASL mechanism: give PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
		}
	case "PLAIN":
		opts = append(opts, kgo.SASL(plain.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsMechanism()))
	case "SCRAM-SHA-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsSha256Mechanism()))
	case "SCRAM-SHA-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: k.SASLUser, Pass: k.SASLPassword}.AsSha512Mechanism()))
	default:
		return nil, fmt.Errorf("SASL mechanism %q: use PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASLMechanism)
	}
	return opts, nil
}
