package ftptest

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
	"time"
)

// setupTLS generates a self-signed ECDSA certificate for 127.0.0.1, ::1 and
// localhost and the matching server tls.Config.
func (s *Server) setupTLS() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}

	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return err
	}

	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "ftptest", Organization: []string{"ftptest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		DNSNames:              []string{"localhost"},
	}

	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}

	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return err
	}

	s.cert = cert
	s.CertPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	s.tlsConfig = &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}},
		MinVersion:   tls.VersionTLS12,
	}

	return nil
}

// CAPool returns a new certificate pool containing the server's self-signed
// certificate, or nil if the server was not started with [WithTLS].
func (s *Server) CAPool() *x509.CertPool {
	if s.cert == nil {
		return nil
	}

	pool := x509.NewCertPool()
	pool.AddCert(s.cert)

	return pool
}

// ClientTLSConfig returns a new client tls.Config that trusts the server
// certificate: RootCAs from [Server.CAPool], ServerName "127.0.0.1" (needed
// for the data connections, which jlaffaye/ftp wraps with tls.Client) and a
// ClientSessionCache so data connections can resume the control session.
// It returns nil if the server was not started with [WithTLS].
func (s *Server) ClientTLSConfig() *tls.Config {
	if s.cert == nil {
		return nil
	}

	return &tls.Config{
		RootCAs:            s.CAPool(),
		ServerName:         s.Host,
		ClientSessionCache: tls.NewLRUClientSessionCache(16),
		MinVersion:         tls.VersionTLS12,
	}
}
