package main

import (
	"log/slog"
	"net/http"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/admin"
	"github.com/switchboard-hub/switchboard/hub/api"
	"github.com/switchboard-hub/switchboard/hub/console"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// mountExtras adds the operator API, the API for integrations, the agent
// console and a landing page.
func mountExtras(mux *http.ServeMux, h *hub.Hub, st *store.Store, reg *connectors.Registry, operatorToken string, log *slog.Logger) {
	svc := admin.NewService(st, admin.Options{Registry: reg, Runner: h, Logger: log})
	mux.Handle("/admin/", admin.NewHandler(svc, operatorToken, log))
	mux.Handle("/api/", api.NewHandler(h, log))
	mux.Handle("/console/", console.Handler())
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/console/", http.StatusFound)
	})
}
