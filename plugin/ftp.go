package plugin

import (
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"

	"github.com/kafka-backup/kafka-backup/destination/ftp"
	"github.com/kafka-backup/kafka-backup/rolling"
	"github.com/kafka-backup/kafka-backup/units"
)

// Field names of fs.ftp.
const (
	fieldFTP            = "ftp"
	fieldFTPHost        = "hostname"
	fieldFTPPort        = "port"
	fieldFTPUser        = "user"
	fieldFTPPassword    = "password"
	fieldFTPTLS         = "tls"
	fieldFTPServerName  = "server_name"
	fieldFTPConnTimeout = "connect_timeout"
	fieldFTPTimeout     = "timeout"
	fieldFTPMaxConns    = "max_connections"

	// defaultFTPMaxConns is max_connections of the output and the input.
	defaultFTPMaxConns = 4
	fieldFTPEPSV       = "epsv"
	fieldFTPSpool      = "spool"
	fieldFTPSpoolLimit = "spool_limit"
)

// errNoHostname is what lint and the output say of an FTP destination
// without a hostname.
const errNoHostname = "is required when fs.schema is ftp: give the FTP server's host name or address"

// hostnameLintRule is the lint rule of fs: an ftp schema needs
// fs.ftp.hostname.
const hostnameLintRule = `root = if this.schema.or("` + schemaLocal + `") == "` + schemaFTP + `" && this.ftp.hostname.or("").string().trim() == "" { ["fs.ftp.hostname: ` + errNoHostname + `"] }`

// ftpSpec is the spec of fs.ftp.
func ftpSpec() *service.ConfigField {
	return service.NewObjectField(fieldFTP,
		service.NewStringField(fieldFTPHost).
			Description("FTP server host name or address; required when `schema` is `ftp` (there is no default: an FTP backup never goes to a server by accident). Seed key: `fs.ftp.hostname`.").
			Default("").
			Example("ftp.example.com"),
		service.NewIntField(fieldFTPPort).
			Description("FTP control port. Seed key: `fs.ftp.port`.").
			Default(21),
		service.NewStringField(fieldFTPUser).
			Description("Login user. Seed key: `fs.ftp.user`.").
			Default("anonymous"),
		service.NewStringField(fieldFTPPassword).
			Description("Login password. Seed key: `fs.ftp.password`. A secret: it is never logged and `echo` redacts it; set it from the environment, e.g. `${FTP_PASSWORD}`.").
			Default("").
			Secret(),
		service.NewTLSToggledField(fieldFTPTLS).
			Description("Explicit FTPS (`AUTH TLS`): the control and every data connection are encrypted, and data connections resume the control connection's TLS session, as vsftpd's `require_ssl_reuse` demands. `root_cas`/`root_cas_file` add a CA; `skip_cert_verify` is for tests only."),
		service.NewStringField(fieldFTPServerName).
			Description("Name the server's certificate is checked against; defaults to `hostname`.").
			Default("").
			Advanced(),
		service.NewStringField(fieldFTPConnTimeout).
			Description("Bound on dialing, TLS negotiation and logging in.").
			Default("10s").
			LintRule(units.DurationLintRule("fs.ftp."+fieldFTPConnTimeout)).
			Advanced(),
		service.NewStringField(fieldFTPTimeout).
			Description("Bound on every read and write on a control or data connection: a frozen server fails the upload, which is retried on a new connection.").
			Default("30s").
			LintRule(units.DurationLintRule("fs.ftp."+fieldFTPTimeout)).
			Advanced(),
		service.NewIntField(fieldFTPMaxConns).
			Description("Uploads at once, one connection each (FTP allows one transfer per connection).").
			Default(defaultFTPMaxConns).
			Advanced(),
		service.NewBoolField(fieldFTPEPSV).
			Description("Use EPSV for passive data connections, falling back to PASV. Set false for servers or firewalls that mishandle EPSV. Transfers are always passive.").
			Default(true).
			Advanced(),
		service.NewStringField(fieldFTPSpool).
			Description("Local folder files are built in before upload. Put it on a persistent volume: files acknowledged to Kafka but not yet uploaded live only here, and are uploaded when kafka-backup starts again with the same spool.").
			Default("kafka-backup-spool"),
		service.NewStringField(fieldFTPSpoolLimit).
			Description("When files waiting for upload exceed this, the output stops acknowledging and Kafka consumption pauses until uploads catch up, instead of filling the disk. Size units as for `size`.").
			Default("1GiB").
			LintRule(units.SizeLintRule("fs.ftp."+fieldFTPSpoolLimit, 1)),
	).Description("FTP server settings, used when `schema` is `ftp`.").Optional()
}

// newFTPDestination builds the FTP destination from fs.ftp. The rolling
// writer then builds files in the spool.
func newFTPDestination(conf *service.ParsedConfig, cfg *rolling.Config, obs ftp.Observer) (*ftp.Destination, error) {
	field := func(f string) string { return "fs.ftp." + f }
	host, err := conf.FieldString(fieldFTPHost)
	if err != nil {
		return nil, err
	}
	if strings.TrimSpace(host) == "" {
		return nil, fmt.Errorf("%s: %s", field(fieldFTPHost), errNoHostname)
	}
	port, err := conf.FieldInt(fieldFTPPort)
	if err != nil {
		return nil, err
	}
	if port < 1 || port > 65535 {
		return nil, fmt.Errorf("%s: %d is not a TCP port", field(fieldFTPPort), port)
	}
	fc := ftp.Config{Addr: net.JoinHostPort(host, strconv.Itoa(port)), Root: cfg.Dir, Instance: cfg.Instance, Observer: obs}
	if fc.User, err = conf.FieldString(fieldFTPUser); err != nil {
		return nil, err
	}
	if fc.Password, err = conf.FieldString(fieldFTPPassword); err != nil {
		return nil, err
	}
	tlsConf, tlsOn, err := conf.FieldTLSToggled(fieldFTPTLS)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field(fieldFTPTLS), err)
	}
	if tlsOn {
		fc.TLS = tlsConf.Clone()
		if fc.TLS.ServerName, err = conf.FieldString(fieldFTPServerName); err != nil {
			return nil, err
		}
		if fc.TLS.ServerName == "" {
			fc.TLS.ServerName = host
		}
		// Data connections resume the control connection's session.
		fc.TLS.ClientSessionCache = tls.NewLRUClientSessionCache(64)
	}
	durations := map[string]*time.Duration{fieldFTPConnTimeout: &fc.ConnectTimeout, fieldFTPTimeout: &fc.IOTimeout}
	for f, dst := range durations {
		s, err := conf.FieldString(f)
		if err != nil {
			return nil, err
		}
		if *dst, err = units.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("%s: %w", field(f), err)
		}
	}
	if fc.MaxConnections, err = conf.FieldInt(fieldFTPMaxConns); err != nil {
		return nil, err
	}
	if fc.MaxConnections < 1 {
		return nil, fmt.Errorf("%s: %d: must be at least 1", field(fieldFTPMaxConns), fc.MaxConnections)
	}
	epsv, err := conf.FieldBool(fieldFTPEPSV)
	if err != nil {
		return nil, err
	}
	fc.DisableEPSV = !epsv
	if fc.Spool, err = conf.FieldString(fieldFTPSpool); err != nil {
		return nil, err
	}
	if fc.Spool == "" {
		return nil, fmt.Errorf("%s: is empty: give a local folder on a persistent volume", field(fieldFTPSpool))
	}
	s, err := conf.FieldString(fieldFTPSpoolLimit)
	if err != nil {
		return nil, err
	}
	if fc.SpoolLimit, err = units.ParseSize(s); err != nil {
		return nil, fmt.Errorf("%s: %w", field(fieldFTPSpoolLimit), err)
	}
	// The rolling writer builds files in the spool; path is the remote root.
	cfg.Dir = fc.Spool
	return ftp.New(fc)
}
