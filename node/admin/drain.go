package admin

import (
	"net/http"
)

// mountDrain adds the drain endpoints: GET /api/node/drain (the state),
// POST /api/node/drain and /api/node/undrain (change it; the Guard's
// token check covers them like every other POST).
func (a *api) mountDrain(mux *http.ServeMux) {
	mux.HandleFunc("GET /api/node/drain", a.needDrain(func(w http.ResponseWriter, _ *http.Request) {
		WriteJSON(w, http.StatusOK, a.Drain.DrainStatus())
	}))
	mux.HandleFunc("POST /api/node/drain", a.needDrain(func(w http.ResponseWriter, _ *http.Request) {
		a.changeDrain(w, "drain", a.Drain.Drain)
	}))
	mux.HandleFunc("POST /api/node/undrain", a.needDrain(func(w http.ResponseWriter, _ *http.Request) {
		a.changeDrain(w, "undrain", a.Drain.Undrain)
	}))
}

func (a *api) changeDrain(w http.ResponseWriter, action string, op func() error) {
	if err := op(); err != nil {
		WriteError(w, http.StatusInternalServerError, err.Error())
		return
	}
	a.Log.Warn("admin: node " + action)
	WriteJSON(w, http.StatusOK, a.Drain.DrainStatus())
}

// needDrain answers 409 on a standalone node: no member could take its mail.
func (a *api) needDrain(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if a.Drain == nil {
			WriteError(w, http.StatusConflict, "node "+a.Node+" is standalone: no member of a routing group could take its mail (listen.mesh is empty)")
			return
		}
		h(w, r)
	}
}
