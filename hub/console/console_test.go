package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/switchboard-hub/switchboard/hub/console"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("/console/", console.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, method, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func checkSecurityHeaders(t *testing.T, what string, h http.Header) {
	t.Helper()
	want := map[string]string{
		"Content-Security-Policy": console.ContentSecurityPolicy,
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %s = %q, want %q", what, k, got, v)
		}
	}
}

func TestServesFilesWithSecurityHeaders(t *testing.T) {
	srv := serve(t)
	for _, tc := range []struct {
		path, ctype, contains string
	}{
		{"/console/", "text/html; charset=utf-8", `<script src="console.js" defer></script>`},
		{"/console/index.html", "text/html; charset=utf-8", `<link rel="stylesheet" href="console.css">`},
		{"/console/console.js", "text/javascript; charset=utf-8", "'use strict';"},
		{"/console/console.css", "text/css; charset=utf-8", ".msg-note"},
	} {
		resp, body := get(t, http.MethodGet, srv.URL+tc.path, nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", tc.path, resp.StatusCode)
		}
		if got := resp.Header.Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if !strings.Contains(body, tc.contains) {
			t.Errorf("GET %s: body lacks %q", tc.path, tc.contains)
		}
		checkSecurityHeaders(t, "GET "+tc.path, resp.Header)
		if resp.Header.Get("Cache-Control") != "no-cache" || resp.Header.Get("ETag") == "" {
			t.Errorf("GET %s: Cache-Control %q, ETag %q: want revalidation", tc.path, resp.Header.Get("Cache-Control"), resp.Header.Get("ETag"))
		}
		// Revalidation answers 304, with the headers still on.
		resp, _ = get(t, http.MethodGet, srv.URL+tc.path, map[string]string{"If-None-Match": resp.Header.Get("ETag")})
		if resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match: %d, want 304", tc.path, resp.StatusCode)
		}
	}
}

func TestRefusesOtherPathsAndMethods(t *testing.T) {
	srv := serve(t)
	resp, _ := get(t, http.MethodGet, srv.URL+"/console/secret.go", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unknown file: %d, want 404", resp.StatusCode)
	}
	checkSecurityHeaders(t, "404", resp.Header)
	resp, _ = get(t, http.MethodPost, srv.URL+"/console/", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d Allow %q, want 405 with Allow: GET, HEAD", resp.StatusCode, resp.Header.Get("Allow"))
	}
	resp, body := get(t, http.MethodHead, srv.URL+"/console/console.js", nil)
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD: %d with %d body bytes", resp.StatusCode, len(body))
	}
}

// TestNoMarkupSinks is the grep-style guard of console.js: untrusted text
// must reach the DOM through textContent/createTextNode only, so none of
// the APIs that parse strings as HTML or code may appear at all (srcdoc of
// the sandboxed iframe is the one deliberate exception, checked below).
func TestNoMarkupSinks(t *testing.T) {
	srv := serve(t)
	_, js := get(t, http.MethodGet, srv.URL+"/console/console.js", nil)
	code := stripComments(js)
	for _, sink := range []string{
		"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
		"createContextualFragment", "DOMParser", "eval(", "new Function", "setAttribute('on",
		`setAttribute("on`, "javascript:", ".href =", ".src =",
	} {
		if strings.Contains(code, sink) {
			t.Errorf("console.js uses %q", sink)
		}
	}
	// setTimeout/setInterval with a string argument is eval.
	if m := regexp.MustCompile(`set(Timeout|Interval)\(\s*['"]`).FindString(code); m != "" {
		t.Errorf("console.js passes a string to %s", m)
	}
	// The only srcdoc is on an iframe created with an empty sandbox.
	if n := strings.Count(code, ".srcdoc"); n != 1 {
		t.Errorf("console.js sets srcdoc %d times, want once", n)
	}
	if !strings.Contains(code, "f.setAttribute('sandbox', '');\n") {
		t.Error("the formatted-message iframe is not created with sandbox=\"\"")
	}
	if strings.Contains(code, "allow-scripts") || strings.Contains(code, "allow-same-origin") {
		t.Error("console.js grants the sandbox something")
	}
	// The one link the script builds is to an object URL of downloaded
	// attachment bytes; no string from the server becomes a URL.
	if n := strings.Count(code, "setAttribute('href'"); n != 1 || !strings.Contains(code, "const url = URL.createObjectURL(await fetchAttachment(") ||
		!strings.Contains(code, "link.setAttribute('href', url);") {
		t.Errorf("console.js sets href %d times, or to something other than an attachment's object URL", n)
	}
	// The token never goes into a URL.
	if regexp.MustCompile(`(?i)[?&](token|access_token)=`).MatchString(code) {
		t.Error("console.js builds a URL with a token parameter")
	}

	// index.html has no inline script, style or handler (the CSP would
	// block them anyway; this keeps the page working under it).
	_, page := get(t, http.MethodGet, srv.URL+"/console/", nil)
	for _, re := range []string{`<script>`, `<script(?:\s+type="[^"]*")?>`, `<style`, `\son[a-z]+\s*=`, `style\s*=`} {
		if m := regexp.MustCompile(`(?i)` + re).FindString(page); m != "" {
			t.Errorf("index.html has inline code: %q", m)
		}
	}
	if regexp.MustCompile(`(?i)(src|href)="(https?:)?//`).MatchString(page) {
		t.Error("index.html loads an external resource")
	}
}

// stripComments removes // and /* */ comments, well enough for our own
// file (which has no "//" inside string literals but URLs built by the URL
// API).
func stripComments(js string) string {
	js = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(js, "")
	return regexp.MustCompile(`(?m)^\s*//.*$`).ReplaceAllString(js, "")
}
