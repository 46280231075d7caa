package status

import (
	"github.com/meshd/meshd/linkstate"
	"github.com/meshd/meshd/node/adminapi"
)

// State is how a connector is drawn and listed.
type State string

// Connector states, in the order of the legend.
const (
	// StateUp: advertised up; at least one bridgehead pair is up.
	StateUp State = "up"
	// StateDown: advertised down: every bridgehead pair is down, or an
	// operator forced it down.
	StateDown State = "down"
	// StateSuppressed: flap damping holds it down although a pair may be up.
	StateSuppressed State = "suppressed"
	// StateHeld: a bridge (the only path between its ends) whose pairs are
	// all down. It stays advertised up and mail for it waits in its queue.
	StateHeld State = "held"
	// StateDrain: an operator drained it; it is advertised at the highest
	// cost and carries mail only as a last resort.
	StateDrain State = "drain"
)

// allStates lists every state in legend order.
func allStates() []State {
	return []State{StateUp, StateDown, StateSuppressed, StateHeld, StateDrain}
}

// Color is the colour a state is drawn in, on the graph and on the page.
func (s State) Color() string {
	switch s {
	case StateUp:
		return "#1e9e3a"
	case StateDown:
		return "#d62728"
	case StateSuppressed:
		return "#ff8c00"
	case StateHeld:
		return "#8e44ad"
	case StateDrain:
		return "#1f6fd1"
	}
	return "#777777"
}

// lineStyle is the Graphviz edge style of a state, so the states differ
// in print and for colour-blind readers too.
func (s State) lineStyle() string {
	switch s {
	case StateDown:
		return "dashed"
	case StateSuppressed:
		return "dashed"
	case StateHeld:
		return "bold"
	case StateDrain:
		return "dotted"
	}
	return "solid"
}

// ConnectorState derives the state of c from its record and the
// operator's override admin ("", "down" or "drain").
func ConnectorState(c *linkstate.Connector, admin string) State {
	return stateOf(admin, c.Bridge, c.Suppressed, c.Up(), pairsUp(c))
}

// infoState is ConnectorState for the connector as the LSDB projection
// (adminapi.ConnectorInfo) shows it, its override included.
func infoState(c adminapi.ConnectorInfo) State {
	up := len(c.Pairs) == 0
	for _, p := range c.Pairs {
		up = up || p.Up
	}
	return stateOf(c.Admin, c.Bridge, c.Suppressed, c.Up, up)
}

func stateOf(admin string, bridge, suppressed, up, pairsUp bool) State {
	switch {
	case admin == "down":
		return StateDown
	case bridge && !pairsUp:
		return StateHeld
	case !bridge && suppressed:
		return StateSuppressed
	case !up:
		return StateDown
	case admin == "drain":
		return StateDrain
	}
	return StateUp
}

// pairsUp reports whether the observed pairs allow mail: some pair up,
// or none observed yet.
func pairsUp(c *linkstate.Connector) bool {
	if len(c.Pairs) == 0 {
		return true
	}
	for _, p := range c.Pairs {
		if p.Up {
			return true
		}
	}
	return false
}
