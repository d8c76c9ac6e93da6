package gateway

import (
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

// Agents fetch attachments of their own instance only; bytes are never
// served as a page (an HTML attachment downloads, it does not render).
func TestAttachmentDownload(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.instance("acme", "")
	e.instance("other", "")
	_, acmeTok := e.agent("acme", "Ravi")
	_, otherTok := e.agent("other", "Mia")
	rec, err := e.connector("acme-chat").host().Deliver(e.ctx, connectors.Inbound{
		ExternalID: "m1", ThreadKey: "t1", Text: "see files", SentAt: time.Now(),
		Sender: connectors.Identity{ExternalID: "vis-1"},
		Attachments: []connectors.Attachment{
			{Filename: "photo.png", ContentType: "image/png", Data: []byte("\x89PNG fake"), ContentID: "img1", Inline: true},
			{Filename: "page.html", ContentType: "text/html", Data: []byte("<script>alert(1)</script>")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.st.Message(e.ctx, "acme", rec.MessageID)
	if err != nil || len(m.Attachments) != 2 {
		t.Fatalf("attachments: %+v %v", m, err)
	}
	get := func(id int64, token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", e.srv.URL+"/agent/attachments/"+strconv.FormatInt(id, 10), nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	png, html := m.Attachments[0], m.Attachments[1]
	if png.Filename != "photo.png" {
		png, html = html, png
	}
	resp := get(png.ID, acmeTok)
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(body) != "\x89PNG fake" || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("png: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
	resp = get(html.ID, acmeTok)
	if resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("X-Content-Type-Options") != "nosniff" ||
		resp.Header.Get("Content-Disposition") != `attachment; filename=page.html` {
		t.Fatalf("html attachment headers: %v", resp.Header)
	}
	for name, c := range map[string]struct {
		token string
		want  int
	}{
		"no token":       {"", http.StatusUnauthorized},
		"bad token":      {"sbt_nope", http.StatusUnauthorized},
		"other instance": {otherTok, http.StatusNotFound},
	} {
		if got := get(png.ID, c.token).StatusCode; got != c.want {
			t.Errorf("%s: status %d, want %d", name, got, c.want)
		}
	}
	if got := get(999999, acmeTok).StatusCode; got != http.StatusNotFound {
		t.Errorf("missing: %d", got)
	}
}
