package harness

import (
	"bufio"
	"encoding/json"
	"errors"
	"io/fs"
	"os"

	"github.com/meshd/meshd/node/adminapi"
)

// countReplyLost adds to out, by Message-ID, the transactions with a
// receiver outside the mesh that one node's tracking log (path, and its
// rotated predecessor) records as deferred with reply_lost: sent in full,
// no reply to the final dot.
func countReplyLost(path string, out map[string]int) error {
	msgID := map[string]string{} // the node's queue ID -> Message-ID
	var lost []string            // queue IDs, once per unanswered transaction
	for _, p := range []string{path + ".1", path} {
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var ev adminapi.TrackEvent
			if json.Unmarshal(sc.Bytes(), &ev) != nil {
				continue // a line cut by a crash
			}
			switch {
			case ev.Event == "received" && ev.MessageID != "":
				msgID[ev.ID] = ev.MessageID
			case ev.Event == "deferred" && ev.ReplyLost && ev.Kind != "mesh":
				lost = append(lost, ev.ID)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return err
		}
	}
	for _, id := range lost {
		if m, ok := msgID[id]; ok {
			out[m]++
		}
	}
	return nil
}
