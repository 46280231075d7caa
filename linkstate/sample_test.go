package linkstate

import (
	"crypto/sha256"
	"fmt"
	"time"
)

var t0 = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

// sampleRecord is a realistic record: 4 members, 5 connectors (one
// external), address spaces on the RG and on connectors, pair states.
// Its lists are deliberately out of canonical order.
func sampleRecord(rg string) *Record {
	r := &Record{
		RG:       rg,
		Version:  Version{Epoch: 3, Major: 7, Minor: 42, User: 5},
		Master:   rg + "-n1",
		IssuedAt: t0,
		TTL:      time.Hour,
		AddressSpaces: []AddressSpace{
			{Pattern: rg + ".example.com", Cost: 1},
			{Pattern: "*." + rg + ".example.com", Cost: 2},
		},
	}
	for i := 4; i >= 1; i-- {
		r.Members = append(r.Members, Member{
			Name:      fmt.Sprintf("%s-n%d", rg, i),
			SMTP:      fmt.Sprintf("10.0.0.%d:25", i),
			LinkState: fmt.Sprintf("10.0.0.%d:691", i),
			Priority:  uint32(10 * i),
		})
	}
	for i := 4; i >= 1; i-- {
		to := fmt.Sprintf("peer%d", i)
		r.Connectors = append(r.Connectors, Connector{
			ID:                fmt.Sprintf("to-%s", to),
			From:              rg,
			To:                to,
			Cost:              uint32(i * 10),
			SourceBridgeheads: []string{rg + "-n2", rg + "-n1"},
			TargetBridgeheads: []string{fmt.Sprintf("10.%d.0.2:25", i), fmt.Sprintf("10.%d.0.1:25", i)},
			Pairs: []PairState{
				{Source: rg + "-n2", Target: fmt.Sprintf("10.%d.0.1:25", i), Up: i%2 == 0},
				{Source: rg + "-n1", Target: fmt.Sprintf("10.%d.0.1:25", i), Up: true},
			},
		})
	}
	r.Connectors = append(r.Connectors, Connector{
		ID:            "internet",
		From:          rg,
		Cost:          50,
		Smarthost:     "[2001:db8::1]:587",
		AddressSpaces: []AddressSpace{{Pattern: "*", Cost: 100}, {Pattern: "partner.example", Cost: 5}},
		Suppressed:    true,
	})
	return r
}

func hashOf(b []byte) [32]byte { return sha256.Sum256(b) }
