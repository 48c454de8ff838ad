package plugin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redpanda-data/benthos/v4/public/service"
	"gopkg.in/yaml.v3"
)

// The Kubernetes examples (config/kubernetes/) are checked here: every YAML
// file under config/ parses, every Benthos config embedded in a ConfigMap
// lints like the plain examples (TestConfigExamples), and the workloads run
// those configs the way docs/operations.md says they should.

// yamlDocuments decodes every document of a (multi-document) YAML file, in
// order, skipping empty ones.
func yamlDocuments(b []byte) ([]map[string]any, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var docs []map[string]any
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// yamlFiles returns the .yaml and .yml files below dir.
func yamlFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && (strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			out = append(out, path)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKubernetesYAMLParses loads every YAML file under config/, every
// document of multi-document files, and fails on a parse error.
func TestKubernetesYAMLParses(t *testing.T) {
	files := yamlFiles(t, "../config")
	k8s := 0
	for _, path := range files {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := yamlDocuments(b)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if len(docs) == 0 {
			t.Errorf("%s: no YAML document", path)
		}
		if strings.Contains(filepath.ToSlash(path), "/kubernetes/") {
			k8s++
			for i, d := range docs {
				meta, _ := d["metadata"].(map[string]any)
				if d["apiVersion"] == nil || d["kind"] == nil || meta == nil || meta["name"] == nil {
					t.Errorf("%s: document %d is not a Kubernetes object (apiVersion, kind, metadata.name)", path, i+1)
				}
			}
		}
	}
	if k8s < 2 {
		t.Errorf("found %d files in config/kubernetes/, want sidecar.yaml and scale-out.yaml", k8s)
	}
}

// A subset of the Kubernetes API, enough for the checks below.
type (
	k8sObject struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   k8sMeta           `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
		Spec       yaml.Node         `yaml:"spec"`
	}
	k8sMeta struct {
		Name        string            `yaml:"name"`
		Labels      map[string]string `yaml:"labels"`
		Annotations map[string]string `yaml:"annotations"`
	}
	k8sWorkloadSpec struct {
		Replicas *int `yaml:"replicas"`
		Strategy struct {
			Type string `yaml:"type"`
		} `yaml:"strategy"`
		ServiceName string `yaml:"serviceName"`
		Template    struct {
			Metadata k8sMeta    `yaml:"metadata"`
			Spec     k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
		VolumeClaimTemplates []struct {
			Metadata k8sMeta `yaml:"metadata"`
		} `yaml:"volumeClaimTemplates"`
	}
	k8sPodSpec struct {
		TerminationGracePeriodSeconds *int           `yaml:"terminationGracePeriodSeconds"`
		SecurityContext               k8sSecCtx      `yaml:"securityContext"`
		Containers                    []k8sContainer `yaml:"containers"`
		Volumes                       []struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
			PersistentVolumeClaim *struct {
				ClaimName string `yaml:"claimName"`
			} `yaml:"persistentVolumeClaim"`
		} `yaml:"volumes"`
	}
	k8sSecCtx struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
		RunAsUser    *int  `yaml:"runAsUser"`
	}
	k8sContainer struct {
		Name    string   `yaml:"name"`
		Image   string   `yaml:"image"`
		Command []string `yaml:"command"`
		Args    []string `yaml:"args"`
		Env     []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name string `yaml:"name"`
					Key  string `yaml:"key"`
				} `yaml:"secretKeyRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		Resources      struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		SecurityContext k8sSecCtx `yaml:"securityContext"`
		VolumeMounts    []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
		} `yaml:"volumeMounts"`
	}
	k8sProbe struct {
		HTTPGet *struct {
			Path string `yaml:"path"`
			Port any    `yaml:"port"`
		} `yaml:"httpGet"`
	}
)

// benthosConfig is what the checks need from an embedded Benthos config.
type benthosConfig struct {
	ShutdownTimeout string `yaml:"shutdown_timeout"`
	HTTP            struct {
		Enabled *bool  `yaml:"enabled"`
		Address string `yaml:"address"`
	} `yaml:"http"`
	Input  map[string]yaml.Node `yaml:"input"`
	Output struct {
		KafkaBackup *struct {
			Path string `yaml:"path"`
			FS   struct {
				Schema string `yaml:"schema"`
				FTP    struct {
					Password string `yaml:"password"`
					Spool    string `yaml:"spool"`
				} `yaml:"ftp"`
			} `yaml:"fs"`
		} `yaml:"kafka_backup"`
	} `yaml:"output"`
}

// envRef matches a Benthos environment interpolation; group 2 is empty when
// it has no default.
var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:[^}]*)?\}`)

// TestKubernetesManifests lints the Benthos configs embedded in the
// ConfigMaps of config/kubernetes/ with the linter TestConfigExamples uses,
// and checks each workload that runs one: config mounted from the
// ConfigMap, every ${VAR} without a default set in the container's
// environment (the FTP password from a Secret), the spool on a
// PersistentVolumeClaim, probes on /ping and /ready at port 4195, resources,
// Prometheus annotations, a grace period longer than shutdown_timeout and a
// non-root user.
func TestKubernetesManifests(t *testing.T) {
	env := testEnv(t)
	linter := env.FullConfigSchema("", "").NewStreamConfigLinter().SetSkipEnvVarCheck(true)
	files := yamlFiles(t, "../config/kubernetes")
	if len(files) < 2 {
		t.Fatalf("found %d files in config/kubernetes/, want sidecar.yaml and scale-out.yaml", len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			objs := decodeObjects(t, b)
			// ConfigMap name -> key -> embedded Benthos config.
			configs := map[string]map[string]string{}
			for _, o := range objs {
				if o.Kind != "ConfigMap" {
					continue
				}
				for key, data := range o.Data {
					var top map[string]any
					if yaml.Unmarshal([]byte(data), &top) != nil || (top["input"] == nil && top["output"] == nil) {
						continue
					}
					if configs[o.Metadata.Name] == nil {
						configs[o.Metadata.Name] = map[string]string{}
					}
					configs[o.Metadata.Name][key] = data
					lintEmbedded(t, env, linter, fmt.Sprintf("ConfigMap %s, %s", o.Metadata.Name, key), data)
				}
			}
			if len(configs) == 0 {
				t.Fatal("no ConfigMap with an embedded Benthos config")
			}
			workloads := 0
			for _, o := range objs {
				switch o.Kind {
				case "Deployment", "StatefulSet":
				default:
					continue
				}
				workloads++
				var spec k8sWorkloadSpec
				if err := o.Spec.Decode(&spec); err != nil {
					t.Fatalf("%s %s: %v", o.Kind, o.Metadata.Name, err)
				}
				checkWorkload(t, o, spec, objs, configs)
			}
			if workloads == 0 {
				t.Error("no Deployment or StatefulSet")
			}
		})
	}
}

func decodeObjects(t *testing.T, b []byte) []k8sObject {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var objs []k8sObject
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		if o.Kind != "" {
			objs = append(objs, o)
		}
	}
}

// lintEmbedded lints an embedded config and builds its kafka_backup output
// section, as TestConfigExamples does for the plain examples.
func lintEmbedded(t *testing.T, env *service.Environment, linter *service.StreamConfigLinter, what, data string) {
	t.Helper()
	lints, err := linter.LintYAML([]byte(data))
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	for _, l := range lints {
		t.Errorf("%s: %s", what, l.Error())
	}
	var top struct {
		Output map[string]yaml.Node `yaml:"output"`
	}
	if err := yaml.Unmarshal([]byte(data), &top); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	node, ok := top.Output["kafka_backup"]
	if !ok {
		return
	}
	section, _ := yaml.Marshal(&node)
	// Environment variables take their defaults, or a placeholder.
	withDefaults := envRef.ReplaceAllStringFunc(string(section), func(ref string) string {
		if m := envRef.FindStringSubmatch(ref); m[2] != "" {
			return m[2][1:]
		}
		return "placeholder"
	})
	parsed, err := OutputSpec().ParseYAML(withDefaults, env)
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if _, _, err := rollingConfig(parsed); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// checkWorkload checks the kafka-backup container of a Deployment or
// StatefulSet against the ConfigMap it mounts.
func checkWorkload(t *testing.T, o k8sObject, spec k8sWorkloadSpec, objs []k8sObject, configs map[string]map[string]string) {
	t.Helper()
	name := o.Kind + " " + o.Metadata.Name
	pod := spec.Template.Spec
	var kb *k8sContainer
	for i, c := range pod.Containers {
		if strings.Contains(c.Image, "kafka-backup") {
			kb = &pod.Containers[i]
		}
	}
	if kb == nil {
		t.Fatalf("%s: no kafka-backup container (image named kafka-backup)", name)
	}
	sidecar := len(pod.Containers) > 1
	cname := name + ", container " + kb.Name

	// The config: args run the file the image's CMD names, mounted from a
	// ConfigMap of this file.
	if got := strings.Join(append(append([]string(nil), kb.Command...), kb.Args...), " "); got != "run /etc/kafka-backup/config.yaml" {
		t.Errorf("%s: command and args %q, want run /etc/kafka-backup/config.yaml (the Dockerfile's CMD)", cname, got)
	}
	mounts := map[string]string{} // mount path -> volume name
	for _, m := range kb.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	var cfgText string
	for _, v := range pod.Volumes {
		if v.Name == mounts["/etc/kafka-backup"] && v.ConfigMap != nil {
			cfgText = configs[v.ConfigMap.Name]["config.yaml"]
		}
	}
	if cfgText == "" {
		t.Fatalf("%s: /etc/kafka-backup is not a ConfigMap of this file with a Benthos config under config.yaml", cname)
	}
	var cfg benthosConfig
	if err := yaml.Unmarshal([]byte(cfgText), &cfg); err != nil {
		t.Fatal(err)
	}
	kbOut := cfg.Output.KafkaBackup
	if kbOut == nil {
		t.Fatalf("%s: the config's output is not kafka_backup", cname)
	}
	if _, ok := cfg.Input["redpanda"]; !ok {
		t.Errorf("%s: the config's input is not redpanda (README, Inputs)", cname)
	}

	// Environment: every ${VAR} without a default is set; the password comes
	// from a Secret, never a literal.
	envs := map[string]bool{}
	for _, e := range kb.Env {
		envs[e.Name] = true
		if e.Name == "FTP_PASSWORD" && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("%s: FTP_PASSWORD is not taken from a Secret (valueFrom.secretKeyRef)", cname)
		}
	}
	for _, m := range envRef.FindAllStringSubmatch(cfgText, -1) {
		if m[2] == "" && !envs[m[1]] {
			t.Errorf("%s: the config uses ${%s} without a default and the container does not set it", cname, m[1])
		}
	}
	if kbOut.FS.Schema == "ftp" && kbOut.FS.FTP.Password != "${FTP_PASSWORD}" {
		t.Errorf("%s: fs.ftp.password is %q, want ${FTP_PASSWORD}", cname, kbOut.FS.FTP.Password)
	}

	// The spool (FTP) or the backup folder (local) is on a claim.
	dataDir := kbOut.Path
	if kbOut.FS.Schema == "ftp" {
		dataDir = kbOut.FS.FTP.Spool
	}
	claims := map[string]bool{}
	for _, v := range pod.Volumes {
		if v.PersistentVolumeClaim != nil {
			claims[v.Name] = true
			if !hasObject(objs, "PersistentVolumeClaim", v.PersistentVolumeClaim.ClaimName) {
				t.Errorf("%s: volume %s uses claim %s, which this file does not define", name, v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
	for _, vct := range spec.VolumeClaimTemplates {
		claims[vct.Metadata.Name] = true
	}
	onClaim := false
	for mp, vol := range mounts {
		if claims[vol] && dataDir != "" && (dataDir == mp || strings.HasPrefix(dataDir, strings.TrimSuffix(mp, "/")+"/")) {
			onClaim = true
		}
	}
	if !onClaim {
		t.Errorf("%s: %s (the spool) is not on a PersistentVolumeClaim mount (mounts %v)", cname, dataDir, mounts)
	}

	// HTTP: the server listens on all interfaces at 4195, probes use it.
	if cfg.HTTP.Enabled != nil && !*cfg.HTTP.Enabled {
		t.Errorf("%s: http is disabled: no probes, no metrics", cname)
	}
	if a := cfg.HTTP.Address; a != "" && a != "0.0.0.0:4195" && a != ":4195" {
		t.Errorf("%s: http.address %q, want 0.0.0.0:4195 (probes and Prometheus come from outside the container)", cname, a)
	}
	probe := func(what string, p *k8sProbe) string {
		if p == nil || p.HTTPGet == nil {
			t.Errorf("%s: no %s httpGet probe", cname, what)
			return ""
		}
		if fmt.Sprint(p.HTTPGet.Port) != "4195" {
			t.Errorf("%s: %s probe on port %v, want 4195", cname, what, p.HTTPGet.Port)
		}
		return p.HTTPGet.Path
	}
	if path := probe("liveness", kb.LivenessProbe); path != "" && path != "/ping" {
		t.Errorf("%s: liveness probe on %s, want /ping", cname, path)
	}
	readiness := probe("readiness", kb.ReadinessProbe)
	switch {
	case sidecar && readiness == "/ready":
		t.Errorf("%s: a sidecar's readiness probe on /ready takes the application out of its Service whenever the FTP server or Kafka is down; use /ping", cname)
	case !sidecar && readiness != "" && readiness != "/ready":
		t.Errorf("%s: readiness probe on %s, want /ready", cname, readiness)
	}

	// Resources.
	for _, r := range []string{"cpu", "memory"} {
		if kb.Resources.Requests[r] == "" {
			t.Errorf("%s: no %s request", cname, r)
		}
	}
	req, lim := quantity(t, kb.Resources.Requests["memory"]), quantity(t, kb.Resources.Limits["memory"])
	if lim == 0 || lim < req {
		t.Errorf("%s: memory limit %q, request %q", cname, kb.Resources.Limits["memory"], kb.Resources.Requests["memory"])
	}

	// Prometheus scrapes the kafka-backup container.
	ann := spec.Template.Metadata.Annotations
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/port"] != "4195" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: Pod annotations %v, want prometheus.io/scrape \"true\", port \"4195\", path /metrics", name, ann)
	}

	// SIGTERM finalizes files: the grace period outlasts shutdown_timeout.
	shutdown := 20 * time.Second // Benthos' default
	if cfg.ShutdownTimeout != "" {
		d, err := time.ParseDuration(cfg.ShutdownTimeout)
		if err != nil {
			t.Fatalf("%s: shutdown_timeout %q: %v", cname, cfg.ShutdownTimeout, err)
		}
		shutdown = d
	}
	grace := 30 * time.Second // Kubernetes' default
	if pod.TerminationGracePeriodSeconds != nil {
		grace = time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
	}
	if grace <= shutdown {
		t.Errorf("%s: terminationGracePeriodSeconds %v is not longer than shutdown_timeout %v: a stop would be a kill", name, grace, shutdown)
	}

	// Non-root, matching the image's USER 65532.
	nonRoot := func(s k8sSecCtx) bool { return s.RunAsNonRoot != nil && *s.RunAsNonRoot }
	if !nonRoot(kb.SecurityContext) && !nonRoot(pod.SecurityContext) {
		t.Errorf("%s: runAsNonRoot is not set", cname)
	}

	// One spool per process.
	replicas := 1
	if spec.Replicas != nil {
		replicas = *spec.Replicas
	}
	switch o.Kind {
	case "Deployment":
		if replicas != 1 || spec.Strategy.Type != "Recreate" {
			t.Errorf("%s: replicas %d, strategy %q: a Deployment with a spool claim must run one Pod (Recreate), or two processes share the spool", name, replicas, spec.Strategy.Type)
		}
	case "StatefulSet":
		if replicas < 2 {
			t.Errorf("%s: %d replicas: the scale-out example should run several", name, replicas)
		}
		if len(spec.VolumeClaimTemplates) == 0 {
			t.Errorf("%s: no volumeClaimTemplates: each replica needs a spool of its own", name)
		}
		for _, v := range pod.Volumes {
			if v.PersistentVolumeClaim != nil {
				t.Errorf("%s: volume %s is one claim shared by every replica", name, v.Name)
			}
		}
		if spec.ServiceName == "" || !hasObject(objs, "Service", spec.ServiceName) {
			t.Errorf("%s: serviceName %q is not a Service of this file", name, spec.ServiceName)
		}
	}
}

func hasObject(objs []k8sObject, kind, name string) bool {
	for _, o := range objs {
		if o.Kind == kind && o.Metadata.Name == name {
			return true
		}
	}
	return false
}

// quantity parses a Kubernetes memory quantity with a binary suffix or none.
func quantity(t *testing.T, q string) int64 {
	t.Helper()
	if q == "" {
		return 0
	}
	mult := int64(1)
	for suffix, m := range map[string]int64{"Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30} {
		if strings.HasSuffix(q, suffix) {
			q, mult = strings.TrimSuffix(q, suffix), m
			break
		}
	}
	n, err := strconv.ParseInt(q, 10, 64)
	if err != nil {
		t.Errorf("memory quantity %q: %v", q, err)
	}
	return n * mult
}
