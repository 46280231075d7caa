package org

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/meshd/meshd/node/admin"
	"github.com/meshd/meshd/node/adminapi"
	"github.com/meshd/meshd/node/membership"
	"github.com/meshd/meshd/node/mesh"
	"github.com/meshd/meshd/orgdoc"
)

// Mesh is what the endpoints ask of the mesh side (node/mesh.Mesh).
type Mesh interface {
	// OfferOrg verifies, stores, applies and floods a document.
	OfferOrg(doc []byte) (fresh bool, err error)
	// View is the gossip view of the node's group (members' versions).
	View() membership.View
	// OrgPeers are the versions other groups' bridgeheads showed over X-LINK2STATE.
	OrgPeers() map[string]mesh.PeerOrg
}

// API is the organisation document's part of the admin API.
type API struct {
	Node, RG string // this node and its routing group
	Docs     *Docs  // nil: the node holds no document
	Mesh     Mesh   // nil: a standalone node
}

// Mount adds the organisation document's endpoints to the admin API
// (admin.Deps.Mount):
//
//	GET  /api/org                    the document in force (404: none)
//	GET  /api/org/signed[?version=N] its signed encoding (what meshctl org diff decodes)
//	GET  /api/org/history            the versions kept
//	GET  /api/org/status             the version each node applied
//	POST /api/org                    a signed document (body): verified, stored, applied, flooded
func (a *API) Mount(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/org", a.needOrg(a.handleOrgShow))
	mux.HandleFunc("GET /api/org/signed", a.needOrg(a.handleOrgSigned))
	mux.HandleFunc("GET /api/org/history", a.needOrg(a.handleOrgHistory))
	mux.HandleFunc("GET /api/org/status", a.needOrg(a.handleOrgStatus))
	mux.HandleFunc("POST /api/org", a.needOrg(a.handleOrgApply))
}

func (a *API) needOrg(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Mesh == nil {
			admin.RefuseStandalone(w, a.Node)
			return
		}
		if a.Docs == nil {
			admin.WriteError(w, http.StatusConflict, "node "+a.Node+" holds no organisation document")
			return
		}
		h(w, r)
	}
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

func (a *API) handleOrgShow(w http.ResponseWriter, _ *http.Request) {
	s, _ := a.Docs.st.Current()
	if s == nil {
		admin.WriteError(w, http.StatusNotFound, "no organisation document in force on "+a.Node)
		return
	}
	admin.WriteJSON(w, http.StatusOK, orgInfo(s, true, true))
}

func (a *API) handleOrgSigned(w http.ResponseWriter, r *http.Request) {
	s, raw := a.Docs.st.Current()
	if v := r.URL.Query().Get("version"); v != "" {
		ver, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			admin.WriteError(w, http.StatusBadRequest, "version must be a number")
			return
		}
		if s, err = a.Docs.st.Get(ver); err != nil {
			admin.WriteError(w, http.StatusNotFound, err.Error())
			return
		}
		raw, _ = s.Encode()
	}
	if s == nil {
		admin.WriteError(w, http.StatusNotFound, "no organisation document in force on "+a.Node)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(raw)
}

func (a *API) handleOrgHistory(w http.ResponseWriter, _ *http.Request) {
	cur := a.Docs.st.Version()
	var h adminapi.OrgHistory
	for _, v := range a.Docs.st.History() {
		if s, err := a.Docs.st.Get(v); err == nil {
			h.Versions = append(h.Versions, orgInfo(s, v == cur, false))
		}
	}
	admin.WriteJSON(w, http.StatusOK, h)
}

func (a *API) handleOrgApply(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, orgdoc.MaxEncoded+1))
	if err != nil {
		admin.WriteError(w, http.StatusBadRequest, "read document: "+err.Error())
		return
	}
	fresh, err := a.Mesh.OfferOrg(body)
	if err != nil {
		status := http.StatusBadRequest
		switch {
		case errors.Is(err, orgdoc.ErrStale), errors.Is(err, orgdoc.ErrConflict):
			status = http.StatusConflict
		case errors.Is(err, orgdoc.ErrUnsigned), errors.Is(err, orgdoc.ErrBadSignature):
			status = http.StatusForbidden
		}
		admin.WriteError(w, status, err.Error())
		return
	}
	admin.WriteJSON(w, http.StatusOK, adminapi.OrgApplyResult{Version: a.Docs.st.Version(), Fresh: fresh})
}

func (a *API) handleOrgStatus(w http.ResponseWriter, _ *http.Request) {
	admin.WriteJSON(w, http.StatusOK, a.orgStatus())
}

// orgStatus says which version each node applied: this node's own, its
// group's members' from gossip, other groups' target bridgeheads' from
// X-LINK2STATE; every node the document names is listed.
func (a *API) orgStatus() adminapi.OrgStatus {
	self, rg := a.Node, a.RG
	cur := a.Docs.st.Version()
	st := adminapi.OrgStatus{Node: self, RG: rg, Version: cur}
	type key struct{ rg, node string }
	got := map[key]adminapi.OrgNodeStatus{{rg, self}: {Node: self, RG: rg, Version: cur, Source: "self"}}
	for _, m := range a.Mesh.View().Members {
		if m.Name != self {
			got[key{m.RG, m.Name}] = adminapi.OrgNodeStatus{Node: m.Name, RG: m.RG, Version: m.Org, Source: "gossip"}
		}
	}
	peers := a.Mesh.OrgPeers()
	var names []key
	if s, _ := a.Docs.st.Current(); s != nil {
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
