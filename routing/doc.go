// Package routing computes where a node sends mail next: least-cost
// routing over the routing-group (RG) graph described by the link-state
// records of package linkstate. It is a pure library: no network, no
// goroutines except the Router's one, no package-level state.
//
// # Data flow
//
//	LSDB snapshot ([]*linkstate.Record)
//	      │  Router.Update (batched by a hold-down)
//	      ▼
//	Computer.Compute ──► graph: RGs indexed as ints, CSR adjacency of up connectors
//	      │                 Dijkstra from the local RG: cost, ECMP first hops, predecessors
//	      │              ──► address-space index (exact / "*.suffix" / "*")
//	      ▼
//	*Table (immutable, swapped atomically) ──► Table.Route(msgID, domain) → Decision
//	                                        ──► Table.Routes / Table.RGs (meshctl routes)
//
// # The graph
//
// Vertices are the RGs of the non-tombstone records (the newest record of
// an RG wins if several are given) plus the local RG, which is a vertex
// even before its own record exists. A connector of RG X with To set is a
// directed edge X→To when Connector.Up() holds and To is a vertex; its
// weight is its cost (1..100; 0 is read as 1). External connectors (To
// empty) are not edges: their address spaces are reachable at the cost of
// the path to their RG, and mail for them travels to that RG and leaves
// there, through the smarthost or by DNS MX.
//
// Dijkstra runs from the local RG with an indexed binary heap. For every
// RG it keeps the least cost, the set of local connectors that start a
// least-cost path (equal-cost multipath first hops, as a bitset) and the
// predecessor edges on least-cost paths, from which Decision.Path is
// rebuilt. Results do not depend on the order of records or connectors.
//
// # Choosing a route (Table.Route)
//
//  1. Address spaces matching the recipient domain are taken most
//     specific first: the exact domain, then "*.suffix" with the most
//     labels ("*.example.com" matches strict subdomains only), then "*".
//     If no candidate of a level is usable (RG unreachable, external
//     connector down, no usable bridgehead), the next level is tried,
//     except after a level that holds an RG's own address space: mail for
//     the organisation's domains waits for its RG rather than leaving
//     through a broader connector such as "*".
//  2. Within the level, the least total cost wins: path cost to the RG
//     plus the address space's cost (an external connector's own Cost is
//     not added; its address spaces carry the cost). Local delivery wins a
//     tie.
//  3. Remaining ties are spread by FNV-1a over messageID, a zero byte and
//     the domain (mixed by the splitmix64 finaliser): first over the
//     equal-cost first-hop connectors (sorted by ID), then, with an
//     independent salt, over the chosen connector's live bridgeheads. The
//     same message and domain take the same path on every node and every
//     retry; different messages spread evenly.
//
// The next hop follows from the chosen local connector and this node
// (Self): Local delivery; External through a local external connector
// (smarthost, or MX when Decision.MX); Remote to a target bridgehead of
// the next RG (all members of that RG when the connector names none); or
// Intra to another member of this RG when the connector lists source
// bridgeheads and this node is not a live one. A connector with no source
// bridgeheads may be used by any member. A bridgehead is live when one of
// its observed pairs is up or none was observed; down ones follow the live
// ones in Decision.NextHops as a last resort.
//
// Organisation domains whose owner has no record in the table (aged out,
// not learned yet, decommissioned) are given by an Owned set
// (Router.SetOwned): such a domain matches no broader address space, so
// its mail waits (ReasonOwnerUnreachable), or, for a removed group, is
// refused for good (ErrRemoved, ReasonRemoved). A NoRoute decision says
// why in Refused and Why.
//
// Every Decision records what lost and why (Alternative.Reason: less
// specific, higher cost, connector down, hash tie-break, unreachable, ...);
// Decision.String is what `meshctl trace` prints, and the JSON tags are
// its -json form. Table.Trace adds Decision.Paths: for every connector of
// the local group to another one, the least-cost path to the destination
// that starts with it (down ones included) and why it lost.
//
// # Recomputation (Router)
//
// Router holds the current *Table in an atomic pointer: Table never
// blocks. Update records the newest records and arms a hold-down timer;
// updates arriving meanwhile are batched. The hold starts at 5 ms, doubles
// (up to 1 s) whenever an update arrives within twice the hold after a
// computation, and resets after a quiet period, as SPF throttling does in
// link-state routers. After each swap OnSwap is called and Changed is
// signalled. The clock is injectable.
//
// A Computer (owned by the Router) keeps the RG name→int index, each
// record's resolved connectors (keyed by record pointer: records are
// immutable) and the address-space index between runs, so a change to one
// record does not re-read the other 9,999. Callers must therefore never
// modify a record after handing it over; copy it instead, as the LSDB does.
//
// Record ages and TTLs are not checked here: the LSDB drops expired
// records, and a missing record makes its RG unreachable.
package routing
