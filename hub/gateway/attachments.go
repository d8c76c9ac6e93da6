package gateway

import (
	"errors"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// inlineTypes are the attachment types a browser may show in place (the
// console's inline mail images); everything else downloads as bytes.
var inlineTypes = map[string]bool{"image/png": true, "image/jpeg": true, "image/gif": true, "image/webp": true}

// AttachmentHandler serves attachments to agents of their own instance:
// GET {prefix}{id} with "Authorization: Bearer <agent token>". The bytes
// are never interpreted by the browser as a page: a sandbox policy,
// nosniff, and a download disposition for anything but plain images.
func AttachmentHandler(h *hub.Hub, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "private, no-store")
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard agents"`)
			http.Error(w, "an agent token is required (Authorization: Bearer …)", http.StatusUnauthorized)
			return
		}
		a, err := h.AuthenticateAgent(r.Context(), tok)
		if err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="switchboard agents", error="invalid_token"`)
			http.Error(w, "the agent token was refused", http.StatusUnauthorized)
			return
		}
		id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
		if err != nil || id <= 0 {
			http.Error(w, "attachment id must be a positive number", http.StatusBadRequest)
			return
		}
		att, rc, err := h.AttachmentBytes(r.Context(), a.InstanceID, id)
		switch {
		case errors.Is(err, store.ErrNotFound):
			// Another instance's attachment is as missing as a deleted one.
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		case err != nil:
			log.Error("read attachment", "attachment", id, "err", err)
			http.Error(w, "the attachment could not be read", http.StatusInternalServerError)
			return
		}
		defer rc.Close()
		ctype, _, _ := mime.ParseMediaType(att.ContentType)
		disp := "attachment"
		if inlineTypes[ctype] {
			disp = "inline"
		} else {
			ctype = "application/octet-stream"
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": att.Filename}))
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; sandbox")
		if att.Size > 0 {
			w.Header().Set("Content-Length", strconv.FormatInt(att.Size, 10))
		}
		if _, err := io.Copy(w, rc); err != nil {
			log.Debug("send attachment", "attachment", id, "err", err)
		}
	})
}
