// Command kafka-backup is Redpanda Connect with the kafka_backup output: it
// runs Benthos pipeline configs (`kafka-backup run config.yaml`, `lint`,
// `list`, `echo`, …) and adds kafka-backup's own subcommands, such as `demo`.
//
// A record's path: the redpanda or kafka_franz input consumes it and hands a
// batch to the kafka_backup output (plugin.Register, output.Output), which
// splits the batch by partition and calls rolling.Writer.Write; the writer
// encodes the records as Kafka RecordBatch v2 (segment.Encoder) into the
// partition's in-progress file, and when the file rolls hands it to the
// destination (destination/local), which renames it to its final name.
package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"

	"github.com/redpanda-data/benthos/v4/public/service"
	"github.com/urfave/cli/v2"

	// The stock components: pure processors, file and stdio I/O, and the Kafka
	// inputs (redpanda, kafka_franz) and outputs. Never the enterprise ones.
	_ "github.com/redpanda-data/benthos/v4/public/components/io"
	_ "github.com/redpanda-data/benthos/v4/public/components/pure"
	_ "github.com/redpanda-data/connect/v4/public/components/kafka"

	// The Prometheus metrics exporter (/metrics), the default exporter.
	_ "github.com/redpanda-data/connect/v4/public/components/prometheus"

	"github.com/kafka-backup/kafka-backup/plugin"
)

// Set at build time with -ldflags "-X main.version=… -X main.dateBuilt=…".
var (
	version   = ""
	dateBuilt = ""
)

func main() {
	// The global environment: Benthos' own create command looks components
	// up there only.
	env := service.GlobalEnvironment()
	if err := plugin.Register(env); err != nil {
		fmt.Fprintln(os.Stderr, "kafka-backup:", err)
		os.Exit(1)
	}
	warnUncommittedOnLint(os.Stderr, os.Args[1:])
	v, d := buildVersion()
	cli.AppHelpTemplate = helpTemplate
	stock := []service.CLIOptFunc{
		service.CLIOptSetBinaryName("kafka-backup"),
		service.CLIOptSetProductName("kafka-backup"),
		service.CLIOptSetVersion(v, d),
	}
	service.RunCLI(context.Background(), append(stock,
		service.CLIOptSetEnvironment(env),
		service.CLIOptAddCommand(createCommand(env, stock...)),
		service.CLIOptAddCommand(demoCommand(env)),
		service.CLIOptAddCommand(restoreCommand()),
		service.CLIOptAddCommand(restoreOffsetsCommand()),
		service.CLIOptAddCommand(verifyCommand()),
		service.CLIOptAddCommand(lsCommand()),
		service.CLIOptAddCommand(catCommand()),
		service.CLIOptAddCommand(pruneCommand()),
		// Benthos keeps one such hook: onConfigParse runs all our checks.
		service.CLIOptOnConfigParse(onConfigParse),
	)...)
}

// buildVersion returns the version stamped at build time, or else the module
// version and VCS time Go recorded.
func buildVersion() (string, string) {
	v, d := version, dateBuilt
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			if s.Key == "vcs.time" && d == "" {
				d = s.Value
			}
		}
	}
	if v == "" {
		v = "dev"
	}
	if d == "" {
		d = "unknown"
	}
	return v, d
}
