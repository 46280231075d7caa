package orgdoc

import (
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/meshd/meshd/internal/atomicfile"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MaxHistory is how many versions a Store keeps (the oldest go first).
const MaxHistory = 64

// Refusals of Store.Offer that callers count apart.
var (
	ErrStale    = errors.New("org: document is not newer than the one in force")
	ErrConflict = errors.New("org: a different document with the same version is in force")
)

// Store keeps the signed documents a node took, one file per version in
// its directory (DATA_DIR/org), written atomically and synced. The highest
// version is the one in force.
type Store struct {
	dir string

	mu      sync.Mutex
	current *Signed
	raw     []byte
	history []uint64 // ascending
}

// OpenStore opens (creating) the store in dir and loads the newest
// document that decodes.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("org: store %s: %w", dir, err)
	}
	st := &Store{dir: dir}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("org: store %s: %w", dir, err)
	}
	for _, e := range ents {
		if v, ok := versionOf(e.Name()); ok {
			st.history = append(st.history, v)
		}
	}
	slices.Sort(st.history)
	for i := len(st.history) - 1; i >= 0; i-- {
		raw, s, err := st.read(st.history[i])
		if err == nil {
			st.current, st.raw = s, raw
			break
		}
	}
	return st, nil
}

func versionOf(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, "v")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".json")
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil && v > 0
}

func (st *Store) path(v uint64) string { return filepath.Join(st.dir, fmt.Sprintf("v%020d.json", v)) }

func (st *Store) read(v uint64) ([]byte, *Signed, error) {
	raw, err := os.ReadFile(st.path(v))
	if err != nil {
		return nil, nil, fmt.Errorf("org: store: %w", err)
	}
	s, err := Decode(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("org: store: %s: %w", st.path(v), err)
	}
	return raw, s, nil
}

// Current is the document in force and its encoding (nil, nil: none).
func (st *Store) Current() (*Signed, []byte) {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.current, st.raw
}

// Version is the version in force (0: none).
func (st *Store) Version() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.current == nil {
		return 0
	}
	return st.current.Doc.Version
}

// History lists the versions kept, oldest first.
func (st *Store) History() []uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return slices.Clone(st.history)
}

// Get reads a version kept in the history.
func (st *Store) Get(v uint64) (*Signed, error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !slices.Contains(st.history, v) {
		return nil, fmt.Errorf("org: version %d is not in the history", v)
	}
	_, s, err := st.read(v)
	return s, err
}

// Offer takes an encoded signed document from anyone (an operator, a
// peer): it is decoded, verified against the trusted CAs at now, and
// stored when its version is above the one in force. It returns the
// document and whether it is new; the same document again is (s, false,
// nil). ErrStale, ErrConflict, ErrUnsigned, ErrBadSignature or a decode
// error refuse it and change nothing.
func (st *Store) Offer(raw []byte, cas []*x509.Certificate, now time.Time) (*Signed, bool, error) {
	s, err := Decode(raw)
	if err != nil {
		return nil, false, err
	}
	if err := s.Verify(cas, now); err != nil {
		return nil, false, err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.current != nil {
		switch cv := st.current.Doc.Version; {
		case s.Doc.Version == cv && bytes.Equal(raw, st.raw):
			return st.current, false, nil
		case s.Doc.Version == cv:
			return nil, false, fmt.Errorf("%w (version %d)", ErrConflict, cv)
		case s.Doc.Version < cv:
			return nil, false, fmt.Errorf("%w (version %d, in force %d)", ErrStale, s.Doc.Version, cv)
		}
	}
	if err := writeSynced(st.dir, filepath.Base(st.path(s.Doc.Version)), raw); err != nil {
		return nil, false, err
	}
	st.current, st.raw = s, raw
	st.history = append(st.history, s.Doc.Version)
	for len(st.history) > MaxHistory {
		_ = os.Remove(st.path(st.history[0]))
		st.history = st.history[1:]
	}
	return s, true, nil
}

// writeSynced writes dir/name through a synced temporary file and a
// rename, then syncs the directory: after a crash the file is either whole
// or absent.
func writeSynced(dir, name string, data []byte) error {
	if err := atomicfile.Write(filepath.Join(dir, name), data, 0o600); err != nil {
		return fmt.Errorf("org: store: %w", err)
	}
	return nil
}
