package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/meshd/meshd/orgdoc"
	"github.com/meshd/meshd/pki"
)

// runOrgDoc is `meshd org check|sign`: the organisation document
// (package orgdoc), checked and signed on the operator's machine, where
// the CA key lives.
//
//	meshd org check org.yaml
//	meshd org sign [-dir DIR | -ca ca.pem -key ca-key.pem] [-version N] [-o FILE] org.yaml
func runOrgDoc(cmd string, args []string, stdout, stderr io.Writer) int {
	switch cmd {
	case "check":
		fs := newFlagSet("meshd org check", "org.yaml", stderr)
		if !parseArgs(fs, args, 1, stderr) {
			return 2
		}
		d, err := readOrgYAML(fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "meshd org check: %s: %v\n", fs.Arg(0), err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: valid: version %d, %d routing groups, %d connectors\n", fs.Arg(0), d.Version, len(d.RoutingGroups), len(d.Connectors))
		return 0
	case "sign":
		synopsis := "[-dir DIR | -ca ca.pem -key ca-key.pem] [-version N] [-o FILE] org.yaml"
		fs := newFlagSet("meshd org sign", synopsis, stderr)
		dir := fs.String("dir", "meshd-org", "organisation `DIR` of meshd org init (its newest CA signs)")
		caFile := fs.String("ca", "", "CA certificate `file` (instead of -dir)")
		keyFile := fs.String("key", "", "CA private key `file` (with -ca; default: the certificate's name with -key.pem)")
		version := fs.Uint64("version", 0, "document `version` (default: the file's version:)")
		out := fs.String("o", "", "write the signed document to `FILE` (default: org.yaml's name with .signed)")
		if !parseArgs(fs, args, 1, stderr) {
			return 2
		}
		path, err := signOrgDoc(fs.Arg(0), *dir, *caFile, *keyFile, *version, *out)
		if err != nil {
			fmt.Fprintf(stderr, "meshd org sign: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "signed document  %s (meshctl org apply %s)\n", path, path)
		return 0
	}
	return -1
}

func readOrgYAML(path string) (*orgdoc.Document, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return orgdoc.Parse(src)
}

// signOrgDoc signs the document at path with the CA (-ca/-key, or the
// newest CA of dir) and writes the signed encoding.
func signOrgDoc(path, dir, caFile, keyFile string, version uint64, out string) (string, error) {
	d, err := readOrgYAML(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	if version != 0 {
		d.Version = version
	}
	if caFile == "" {
		files, err := pki.CAFiles(dir)
		if err != nil {
			return "", err
		}
		caFile = files[len(files)-1]
	}
	if keyFile == "" {
		keyFile = strings.TrimSuffix(caFile, ".pem") + "-key.pem"
	}
	ca, key, err := pki.ReadCA(caFile, keyFile)
	if err != nil {
		return "", err
	}
	s, err := orgdoc.Sign(*d, ca, key, time.Now())
	if err != nil {
		return "", err
	}
	b, err := s.Encode()
	if err != nil {
		return "", err
	}
	if out == "" {
		out = strings.TrimSuffix(path, filepath.Ext(path)) + ".signed"
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		return "", err
	}
	return out, nil
}
