package livechat

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"time"
)

// The widget is plain JS and CSS, embedded in the binary: no build step.
//
//go:embed web/widget.js web/widget.css web/demo.html
var webFS embed.FS

type assets struct {
	widgetJS, widgetCSS, demo http.Handler
}

func newAssets() assets {
	return assets{
		widgetJS:  staticFile("web/widget.js", "text/javascript; charset=utf-8", nil),
		widgetCSS: staticFile("web/widget.css", "text/css; charset=utf-8", nil),
		demo: staticFile("web/demo.html", "text/html; charset=utf-8", http.Header{
			// The demo page runs no inline script and loads only from
			// this hub, so a strict policy holds; it also proves the
			// widget needs no 'unsafe-inline'.
			"Content-Security-Policy": {"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"},
			"Referrer-Policy":         {"no-referrer"},
		}),
	}
}

// staticFile serves one embedded file with a strong ETag, so browsers
// revalidate cheaply after an upgrade changed the widget.
func staticFile(name, contentType string, extra http.Header) http.Handler {
	body, err := webFS.ReadFile(name)
	if err != nil {
		panic("livechat: embedded file missing: " + name) // a build defect
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:12]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("ETag", etag)
		for k, v := range extra {
			h[k] = v
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	})
}
