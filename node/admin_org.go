package node

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/orgdoc"
)

// mountOrg adds the organisation document's endpoints to the admin API:
//
//	GET  /api/org                    the document in force (404: none)
//	GET  /api/org/signed[?version=N] its signed encoding (what meshctl org diff decodes)
//	GET  /api/org/history            the versions kept
//	GET  /api/org/status             the version each node applied
//	POST /api/org                    a signed document (body): verified, stored, applied, flooded
func (n *Node) mountOrg(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/org", n.needOrg(n.handleOrgShow))
	mux.HandleFunc("GET /api/org/signed", n.needOrg(n.handleOrgSigned))
	mux.HandleFunc("GET /api/org/history", n.needOrg(n.handleOrgHistory))
	mux.HandleFunc("GET /api/org/status", n.needOrg(n.handleOrgStatus))
	mux.HandleFunc("POST /api/org", n.needOrg(n.handleOrgApply))
}

func (n *Node) needOrg(h http.HandlerFunc) http.HandlerFunc {
	return n.needMesh(func(w http.ResponseWriter, r *http.Request) {
		if n.org == nil {
			writeError(w, http.StatusConflict, "node "+n.cfg.Node.Name+" holds no organisation document")
			return
		}
		h(w, r)
	})
}

func orgInfo(s *orgdoc.Signed, inForce, withDoc bool) adminapi.OrgInfo {
	info := adminapi.OrgInfo{
		Version: s.Doc.Version, IssuedAt: time.Unix(s.Doc.IssuedAt, 0).UTC(), Signer: s.Signer,
		Organisation: s.Doc.Organisation, Comment: s.Doc.Comment, InForce: inForce,
	}
	if withDoc {
		info.Document, _ = s.Doc.CanonicalDoc()
	}
	return info
}

func (n *Node) handleOrgShow(w http.ResponseWriter, _ *http.Request) {
	s, _ := n.org.st.Current()
	if s == nil {
		writeError(w, http.StatusNotFound, "no organisation document in force on "+n.cfg.Node.Name)
		return
	}
	writeJSON(w, http.StatusOK, orgInfo(s, true, true))
}

func (n *Node) handleOrgSigned(w http.ResponseWriter, r *http.Request) {
	s, raw := n.org.st.Current()
	if v := r.URL.Query().Get("version"); v != "" {
		ver, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, "version must be a number")
			return
		}
		if s, err = n.org.st.Get(ver); err != nil {
			writeError(w, http.StatusNotFound, err.Error())
			return
		}
		raw, _ = s.Encode()
	}
	if s == nil {
		writeError(w, http.StatusNotFound, "no organisation document in force on "+n.cfg.Node.Name)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw)
}

func (n *Node) handleOrgHistory(w http.ResponseWriter, _ *http.Request) {
	cur := n.org.st.Version()
	var h adminapi.OrgHistory
	for _, v := range n.org.st.History() {
		if s, err := n.org.st.Get(v); err == nil {
			h.Versions = append(h.Versions, orgInfo(s, v == cur, false))
		}
	}
	writeJSON(w, http.StatusOK, h)
}

func (n *Node) handleOrgApply(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, orgdoc.MaxEncoded+1))
	if err != nil {
		writeError(w, http.StatusBadRequest, "read document: "+err.Error())
		return
	}
	fresh, err := n.mesh.OfferOrg(body)
	if err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, orgdoc.ErrStale), errors.Is(err, orgdoc.ErrConflict):
			status = http.StatusConflict
		case errors.Is(err, orgdoc.ErrUnsigned), errors.Is(err, orgdoc.ErrBadSignature):
			status = http.StatusForbidden
		}
		writeError(w, status, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, adminapi.OrgApplyResult{Version: n.org.st.Version(), Fresh: fresh})
}

func (n *Node) handleOrgStatus(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, n.orgStatus())
}

// orgStatus says which version each node applied: this node's own, its
// group's members' from gossip, other groups' target bridgeheads' from
// X-LINK2STATE; every node the document names is listed.
func (n *Node) orgStatus() adminapi.OrgStatus {
	self, rg := n.cfg.Node.Name, n.cfg.Node.RoutingGroup
	cur := n.org.st.Version()
	st := adminapi.OrgStatus{Node: self, RG: rg, Version: cur}
	type key struct{ rg, node string }
	got := map[key]adminapi.OrgNodeStatus{{rg, self}: {Node: self, RG: rg, Version: cur, Source: "self"}}
	for _, m := range n.mesh.View().Members {
		if m.Name != self {
			got[key{m.RG, m.Name}] = adminapi.OrgNodeStatus{Node: m.Name, RG: m.RG, Version: m.Org, Source: "gossip"}
		}
	}
	peers := n.mesh.OrgPeers()
	var names []key
	if s, _ := n.org.st.Current(); s != nil {
		for _, g := range s.Doc.RoutingGroups {
			for _, dn := range g.Nodes {
				k := key{g.Name, dn.Name}
				names = append(names, k)
				if _, ok := got[k]; ok {
					continue
				}
				ns := adminapi.OrgNodeStatus{Node: dn.Name, RG: g.Name, Source: "unknown"}
				if p, ok := peers[dn.Mesh]; ok {
					at := p.At.UTC()
					ns.Version, ns.Source, ns.Seen = p.Version, "x-link2state", &at
				}
				got[k] = ns
			}
		}
	}
	for k := range got {
		if !slices.Contains(names, k) {
			names = append(names, k)
		}
	}
	slices.SortFunc(names, func(a, b key) int {
		if a.rg != b.rg {
			return strings.Compare(a.rg, b.rg)
		}
		return strings.Compare(a.node, b.node)
	})
	for _, k := range names {
		ns := got[k]
		ns.Lags = ns.Version < cur && ns.Source != "unknown"
		st.Nodes = append(st.Nodes, ns)
	}
	return st
}

var _ mesh.OrgDocs = (*orgDocs)(nil)
