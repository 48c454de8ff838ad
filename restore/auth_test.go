package restore

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/kafka-backup/kafka-backup/internal/backuptest"
	"github.com/kafka-backup/kafka-backup/segment"
)

// selfSigned returns a server certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "kfake"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// TestKafkaTLSAndSASL restores to a cluster that wants TLS and SCRAM.
func TestKafkaTLSAndSASL(t *testing.T) {
	t.Parallel()
	cert, caPEM := selfSigned(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, caPEM, 0o644)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "t"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "restorer", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root := t.TempDir()
	backuptest.WriteSegment(t, root, "t", 0, name(0), varied(0, 20), 5, segment.None)

	good := Kafka{TLS: true, TLSCAFile: ca, SASLMechanism: "scram-sha-256", SASLUser: "restorer", SASLPassword: "s3cret"}
	opts, err := good.Opts()
	if err != nil {
		t.Fatal(err)
	}
	sum, err := restore(t, root, c.ListenAddrs(), Config{ClientOpts: opts, StallTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Totals().Records != 20 {
		t.Errorf("%d records restored", sum.Totals().Records)
	}

	for _, k := range []Kafka{
		{SASLMechanism: "GSSAPI"},
		{SASLUser: "u"},
		{TLS: true, TLSCAFile: filepath.Join(t.TempDir(), "missing.pem")},
	} {
		if _, err := k.Opts(); err == nil {
			t.Errorf("%+v: no error", k)
		}
	}
	if _, err := (Kafka{TLSCAFile: ca + "x"}).Opts(); err == nil || !strings.Contains(err.Error(), "CA file") {
		t.Errorf("missing CA file: %v", err)
	}
}
