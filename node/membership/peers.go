package membership

import (
	"bufio"
	"bytes"
	"fmt"
	"github.com/meshd/meshd/internal/atomicfile"
	"os"
	"slices"
	"strings"
)

// The members a node has seen, kept across its restarts (Config.PeersFile).
//
// memberlist only knows the members of this run. A node restarted on a new
// gossip address whose configured seeds are only itself (the first node of
// a group often lists none but its own) would start alone, while the
// others look for it at its old address: the group would stay split, two
// masters would each originate its record, and other groups, believing
// the record of the half they heard last, would refuse the other half's
// nodes as not in the LSDB. With the file, the restarted node seeds from
// the members it last saw, and they learn its new address from it.

// loadPeers reads name → gossip address lines; a missing file is empty.
func loadPeers(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("membership: read %s: %w", path, err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, addr, ok := strings.Cut(strings.TrimSpace(sc.Text()), " ")
		if ok && name != "" && addr != "" {
			out[name] = addr
		}
	}
	return out, nil
}

// savePeers writes known (without self) to path through a temporary file,
// so a crash leaves the old list or the new one.
func savePeers(path, self string, known map[string]string) error {
	var names []string
	for n := range known {
		if n != self {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s\n", n, known[n])
	}
	if err := atomicfile.Write(path, b.Bytes(), 0o600); err != nil {
		return fmt.Errorf("membership: save peers: %w", err)
	}
	return nil
}
