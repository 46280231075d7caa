package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strings"

	"github.com/meshd/meshd/edge/dkim"
)

// dkimCmd runs "dkim keygen [-alg ed25519|rsa] [-out FILE] DOMAIN
// SELECTOR": it writes a new signing key (mode 0600, never over an
// existing file) and prints the DNS TXT record to publish. It needs no
// node: the key file is then named in dkim.keys[].key_file.
func (c *cli) dkimCmd(args []string) int {
	if len(args) == 0 || args[0] != "keygen" {
		return c.usage("dkim needs a subcommand: keygen")
	}
	fs := flag.NewFlagSet("dkim keygen", flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	alg := fs.String("alg", "rsa", "key `algorithm`: rsa (2048 bits, what every verifier checks) or ed25519 (RFC 8463)")
	out := fs.String("out", "", "key `file` to write (default DOMAIN.SELECTOR.key in the current directory)")
	if err := fs.Parse(args[1:]); err != nil {
		return exitUsage
	}
	if fs.NArg() != 2 {
		return c.usage("dkim keygen needs DOMAIN and SELECTOR")
	}
	domain, selector := strings.ToLower(strings.TrimSuffix(fs.Arg(0), ".")), strings.ToLower(fs.Arg(1))
	check := dkim.Config{Keys: []dkim.Key{{Domain: domain, Selector: selector, KeyFile: "-"}}}
	if err := check.Validate("dkim"); err != nil && !strings.Contains(err.Error(), "key_file") {
		return c.usage(strings.TrimPrefix(strings.Replace(err.Error(), "dkim.keys[0].", "", 1), "config: "))
	}
	path := *out
	if path == "" {
		path = domain + "." + selector + ".key"
	}
	pemData, key, err := dkim.Keygen(*alg)
	if err != nil {
		return c.usage(err.Error())
	}
	txt, err := dkim.TXTRecord(domain, selector, key)
	if err != nil {
		return c.fail(err)
	}
	if err := dkim.WriteKey(path, pemData); err != nil {
		return c.fail(fmt.Errorf("dkim keygen: %w", err))
	}
	if c.json {
		value, _ := dkim.TXTValue(key)
		raw, _ := json.Marshal(map[string]string{"key_file": path, "name": selector + "._domainkey." + domain, "txt": value, "record": txt})
		return c.writeRaw(raw)
	}
	fmt.Fprintf(c.stdout, "wrote %s (mode 0600); name it in dkim.keys[].key_file with domain %s and selector %s, and publish:\n%s\n", path, domain, selector, txt)
	return exitOK
}
