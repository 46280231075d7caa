package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown top key", "nodes: {}\n", "config: line 1: nodes: unknown key"},
		{"unknown nested key", "queue:\n  retry:\n    intial: 1m\n", "config: line 3: queue.retry.intial: unknown key"},
		{"unknown user key", "auth:\n  users:\n    - {name: a, hash: x, pass: y}\n", "config: line 3: auth.users[0].pass: unknown key"},
		{"duration without unit", "outbound:\n  connect_timeout: 30\n", `config: line 2: outbound.connect_timeout: must be a duration such as 30s, 5m or 48h, got "30"`},
		{"bad duration", "limits:\n  data_timeout: soon\n", `config: line 2: limits.data_timeout: must be a duration such as 30s, 5m or 48h, got "soon"`},
		{"int not a number", "limits:\n  max_recipients: lots\n", `config: line 2: limits.max_recipients: must be an integer, got "lots"`},
		{"bool", "tls:\n  self_signed: maybe\n", `config: line 2: tls.self_signed: must be true or false, got "maybe"`},
		{"list expected", "local_domains: example.test\n", "config: line 1: local_domains: must be a list"},
		{"mapping expected", "node: n1\n", "config: line 1: node: must be a mapping"},
		{"max_recipients zero", "limits: {max_recipients: 0}\n", "config: limits.max_recipients: must be 1..10000, got 0"},
		{"data total timeout", "limits: {data_total_timeout: 48h}\n", "config: limits.data_total_timeout: must be 1s..24h, got 48h"},
		{"max_connections", "limits: {max_connections: 0}\n", "config: limits.max_connections: must be 1..1000000, got 0"},
		{"max_connections_per_peer", "limits: {max_connections_per_peer: 0}\n", "config: limits.max_connections_per_peer: must be 1..100000, got 0"},
		{"peer_auth_timeout", "limits: {peer_auth_timeout: 1ms}\n", "config: limits.peer_auth_timeout: must be 100ms..10m, got 1ms"},
		{"observation_lease", "listen: {mesh: '127.0.0.1:0', linkstate: '127.0.0.1:0', gossip: '127.0.0.1:0'}\nmesh: {insecure_plaintext: true, routing_groups: [{name: rg1}], org_key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=, observation_lease: 2h}\n", "config: mesh.observation_lease: must be at most 1h, got 2h"},
		{"max_message_bytes", "limits: {max_message_bytes: 10}\n", "config: limits.max_message_bytes: must be 1024..1073741824, got 10"},
		{"name", "node: {name: N_1}\n", `config: node.name: must be 1-63 lowercase letters, digits or '-', got "N_1"`},
		{"listen smtp empty", "listen: {smtp: ''}\n", "config: listen.smtp: must not be empty"},
		{"admin public without auth", "listen: {admin: '0.0.0.0:8025'}\n", "config: listen.admin: 0.0.0.0:8025 is not a loopback address: anyone who reaches it could read the queue and message tracking; set admin.auth: all (every request then needs the admin token) or listen on 127.0.0.1"},
		{"admin lan without auth", "listen: {admin: '192.0.2.1:8025'}\n", "config: listen.admin: 192.0.2.1:8025 is not a loopback address"},
		{"admin empty host without auth", "listen: {admin: ':8025'}\n", "config: listen.admin: :8025 is not a loopback address"},
		{"admin auth", "admin: {auth: none}\n", `config: admin.auth: must be writes or all, got "none"`},
		{"admin hosts", "admin: {hosts: ['a b']}\n", `config: admin.hosts[0]: must be a DNS host name, got "a b"`},
		{"bare line ends", "limits: {bare_line_ends: strip}\n", `config: limits.bare_line_ends: must be normalize or reject, got "strip"`},
		{"listen bad", "listen: {admin: localhost}\n", `config: listen.admin: must be host:port, got "localhost"`},
		{"listen port", "listen: {admin: '127.0.0.1:70000'}\n", `config: listen.admin: port must be 0..65535, got "70000"`},
		{"listen duplicate", "listen: {smtp: '127.0.0.1:2600', submission: '127.0.0.1:2600'}\n", "config: listen.submission: address 127.0.0.1:2600 is already used by listen.smtp"},
		{"tls half", "tls: {cert_file: a.pem}\n", "config: tls.key_file: must be set when tls.cert_file is set"},
		{"no domains", "local_domains: []\n", "config: local_domains: must list at least one domain"},
		{"bad domain", "local_domains: [example.test, 'bad domain']\n", `config: local_domains[1]: must be a domain name, got "bad domain"`},
		{"mode", "delivery: {mode: mbox}\n", `config: delivery.mode: must be maildir or lmtp, got "mbox"`},
		{"lmtp missing", "delivery: {mode: lmtp}\n", "config: delivery.lmtp: must be set when delivery.mode is lmtp"},
		{"smarthost", "outbound: {smarthost: mail.example.com}\n", `config: outbound.smarthost: must be host:port, got "mail.example.com"`},
		{"mx_port", "outbound: {mx_port: 0}\n", "config: outbound.mx_port: must be 1..65535, got 0"},
		{"max_mx_hosts", "outbound: {max_mx_hosts: 50}\n", "config: outbound.max_mx_hosts: must be 1..10, got 50"},
		{"connect_timeout", "outbound: {connect_timeout: 1ms}\n", "config: outbound.connect_timeout: must be 100ms..10m, got 1ms"},
		{"retry max below initial", "queue: {retry: {initial: 10m, max: 1m}}\n", "config: queue.retry.max: must be 10m..168h, got 1m"},
		{"factor", "queue: {retry: {factor: 0.5}}\n", "config: queue.retry.factor: must be 1..10, got 0.5"},
		{"jitter", "queue: {retry: {jitter: 2}}\n", "config: queue.retry.jitter: must be 0..1, got 2"},
		{"delay warning", "queue: {delay_warning: 1000h}\n", "config: queue.delay_warning: must be 0s..720h, got 1000h"},
		{"max_bytes", "queue: {max_bytes: 100}\n", "config: queue.max_bytes: must be at least 1048576, got 100"},
		{"max_shadow_bytes small", "queue: {max_shadow_bytes: 1000}\n", "config: queue.max_shadow_bytes: must be 0 (no shadows) or at least 1048576, got 1000"},
		{"max_shadow_bytes over max_bytes", "queue: {max_bytes: 104857600}\n", "config: queue.max_shadow_bytes: must not exceed queue.max_bytes (104857600), got 1073741824"},
		{"proxy network", "listen: {proxy_protocol_from: [nope]}\n", `config: listen.proxy_protocol_from[0]: must be an IP address or CIDR, got "nope"`},
		{"proxy listener", "listen: {proxy_protocol_from: [10.0.0.5], proxy_protocol: [mesh]}\n", `config: listen.proxy_protocol[0]: must be smtp, submission or submissions, got "mesh"`},
		{"proxy without from", "listen: {proxy_protocol: [smtp]}\n", `config: listen.proxy_protocol: needs listen.proxy_protocol_from`},
		{"submissions address", "listen: {submissions: nope}\n", `config: listen.submissions: must be host:port`},
		{"network", "relay: {allow_networks: [10.0.0.0/33]}\n", `config: relay.allow_networks[0]: must be an IP address or CIDR, got "10.0.0.0/33"`},
		{"peer", "relay: {mesh_peers: [host.example]}\n", `config: relay.mesh_peers[0]: must be an IP address or CIDR, got "host.example"`},
		{"hash", "auth: {users: [{name: alice, hash: plain}]}\n", "config: auth.users[0].hash: must be a bcrypt ($2a$, $2b$, $2y$) or argon2id ($argon2id$) hash"},
		{"user name", "auth: {users: [{name: '', hash: x}]}\n", `config: auth.users[0].name: must be a non-empty name without spaces, got ""`},
		{"log level", "log: {level: loud}\n", `config: log.level: must be debug, info, warn or error, got "loud"`},
		{"log format", "log: {format: xml}\n", `config: log.format: must be text or json, got "xml"`},
		{"in doubt timeout", "listen: {mesh: '127.0.0.1:2700'}\nmesh: {insecure_plaintext: true, in_doubt_timeout: 10ms, routing_groups: [{name: rg1}], org_key: MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=}\n", "config: mesh.in_doubt_timeout: must be 1s..168h, got 10ms"},
		{"yaml syntax", "node: [\n", "config: yaml:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("error = %q\nwant prefix %q", err, tt.want)
			}
		})
	}
}

func TestParseConfigOverridesDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
node: {name: n2, routing_group: site-b, data_dir: /tmp/x/}
local_domains: [Example.COM.]
outbound: {smarthost: "127.0.0.1:2526"}
queue:
  retry: {initial: 50ms, max: 1s}
  lifetime: 10m
auth:
  users:
    - name: alice
      hash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$YWJjZGVmZ2hpamtsbW5vcA"
`))
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"name", cfg.Node.Name, "n2"},
		{"hostname derived", cfg.Node.Hostname, "n2.site-b.meshd.test"},
		{"data dir cleaned", cfg.Node.DataDir, "/tmp/x"},
		{"maildir derived", cfg.Delivery.Maildir, "/tmp/x/maildir"},
		{"domain normalised", cfg.LocalDomains[0], "example.com"},
		{"helo derived", cfg.Outbound.HeloName, "n2.site-b.meshd.test"},
		{"retry initial", cfg.Queue.Retry.Initial, 50 * time.Millisecond},
		{"retry factor kept", cfg.Queue.Retry.Factor, def.Queue.Retry.Factor},
		{"smtp listen kept", cfg.Listen.SMTP, def.Listen.SMTP},
		{"limits kept", cfg.Limits, def.Limits},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestDefaultConfigValid(t *testing.T) {
	cfg := Default()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	// An empty file is the defaults.
	got, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.Node.Hostname != cfg.Node.Hostname || got.Delivery.Maildir != cfg.Delivery.Maildir {
		t.Errorf("empty file differs from defaults: %+v", got.Node)
	}
}

// TestDocsListEveryKey keeps docs/config.md complete: every key of Config
// must appear in it, in backquotes.
func TestDocsListEveryKey(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	keys := Keys()
	if len(keys) < 50 {
		t.Fatalf("Keys returned only %d keys: %v", len(keys), keys)
	}
	for _, k := range keys {
		if !strings.Contains(string(doc), "`"+k+"`") {
			t.Errorf("docs/config.md does not document `%s`", k)
		}
	}
}
