package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed web/index.html web/console.js web/console.css
var files embed.FS

// ContentSecurityPolicy is the policy every console response carries.
//
// Beyond the policy the console was specified with, it adds:
//   - frame-ancestors 'none': X-Frame-Options for browsers that read only
//     CSP (no clickjacking of the reply and accept buttons);
//   - form-action 'none': the sign-in form is handled by script; if the
//     script ever failed to run, the browser must not submit the form
//     itself, which would put the token in a URL.
//
// frame-src allows about: for the sandboxed srcdoc iframe of the
// formatted message view; a srcdoc document inherits this policy, so it
// can load no remote images (tracking pixels) and run no script even
// without its sandbox.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; frame-src 'self' about:; object-src 'none'; base-uri 'none'; " +
	"frame-ancestors 'none'; form-action 'none'"

// file is one embedded file, ready to serve.
type file struct {
	name        string
	contentType string
	body        []byte
	etag        string
}

// Handler serves the console's files. Mount it on a path ending in a
// slash, e.g. mux.Handle("/console/", console.Handler()): it serves
// index.html for the mount path itself and the other files by name beside
// it, whatever the prefix, so the page also works behind a path prefix. It
// finds the gateway at ../agent/ws relative to the page (see index.html).
func Handler() http.Handler {
	byName := map[string]*file{}
	for name, ctype := range map[string]string{
		"index.html":  "text/html; charset=utf-8",
		"console.js":  "text/javascript; charset=utf-8",
		"console.css": "text/css; charset=utf-8",
	} {
		b, err := files.ReadFile("web/" + name)
		if err != nil {
			// The embed directive lists these files: the build fails
			// before this can.
			panic("console: embedded file missing: " + name)
		}
		sum := sha256.Sum256(b)
		byName[name] = &file{name: name, contentType: ctype, body: b, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		// On every answer, errors included: a 404 page is a document too.
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := path.Base(r.URL.Path)
		if strings.HasSuffix(r.URL.Path, "/") {
			name = "index.html"
		}
		f := byName[name]
		if f == nil {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", f.contentType)
		// Revalidate every time (the ETag makes that a 304): an upgraded
		// binary must never run with a cached script of the old one.
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	})
}
