package webform

import (
	"bufio"
	"bytes"
	"html"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Case C25 (stored XSS through a form), connector level. The input is
// testdata/C25.http, a copy of the shared case file, sent byte for byte
// except for the request target, which becomes this channel's submit route.
// The hub-level half (sanitized HTML, the console showing the name as text
// in headless Chromium) belongs to the hub's tests.

const (
	c25Name    = `"<script>alert("x")</script>`
	c25Subject = `Order issue <img src=x onerror=alert(document.domain)>`
	// Browsers send textarea line breaks as CRLF; they are stored as LF.
	c25Message = "Hello <b onmouseover=alert('hover')>click me!</b>\n" +
		"<a href=\"javascript:alert(1)\">my order</a>\n" +
		"<iframe src=\"https://evil.example.net/\"></iframe>\n" +
		"<svg/onload=alert(2)>\n" +
		"Order number: 8812"
)

func readC25(t *testing.T) []byte {
	t.Helper()
	raw, err := os.ReadFile("testdata/C25.http")
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestC25StoredVerbatim(t *testing.T) {
	f := newFixture(t, `{"allowed_origins":["https://www.example.com"]}`)
	raw := readC25(t)
	wire := bytes.Replace(raw, []byte("POST /forms/contact HTTP/1.1"), []byte("POST /channels/"+testChannel+"/submit HTTP/1.1"), 1)
	if bytes.Equal(wire, raw) {
		t.Fatal("request line of C25.http not found")
	}

	conn, err := net.DialTimeout("tcp", f.srv.Listener.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := conn.Write(wire); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page bytes.Buffer
	_, _ = page.ReadFrom(resp.Body)

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		t.Fatalf("status %d, want 2xx: %s", resp.StatusCode, page.String())
	}
	items := f.host.items()
	if len(items) != 1 || f.host.deliverCalls() != 1 {
		t.Fatalf("%d items stored in %d Deliver calls, want exactly 1", len(items), f.host.deliverCalls())
	}
	in := items[0]
	checks := []struct{ what, got, want string }{
		{"Sender.DisplayName", in.Sender.DisplayName, c25Name},
		{"Sender.Email", in.Sender.Email, "mallory@example.org"},
		{"Sender.ExternalID", in.Sender.ExternalID, "mallory@example.org"},
		{"Subject", in.Subject, c25Subject},
		{"Text", in.Text, c25Message},
		{"HTML", in.HTML, ""},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	if !strings.Contains(in.Text, "Order number: 8812") || !in.NewTicket {
		t.Errorf("Text %q, NewTicket %v", in.Text, in.NewTicket)
	}
	// The thank-you page echoes nothing of the input.
	if strings.Contains(page.String(), "alert") {
		t.Errorf("thank-you page echoes the input: %s", page.String())
	}
}

// TestC25FormEscapes: the form shown again with the hostile input (here
// because the email is missing) shows it as text: no element or attribute of
// it reaches the page, and each value decodes back to exactly what was sent.
func TestC25FormEscapes(t *testing.T) {
	f := newFixture(t, "")
	body := url.Values{
		"name":    {c25Name},
		"subject": {c25Subject},
		"message": {strings.ReplaceAll(c25Message, "\n", "\r\n")},
		"email":   {`"><script>alert(3)</script>`},
	}.Encode()
	r := f.postForm(t, body, nil)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("status %d", r.status)
	}
	lower := strings.ToLower(r.body)
	for _, bad := range []string{"<script", "<img", "<iframe", "<svg", "<b ", "<a href=\"javascript"} {
		if strings.Contains(lower, bad) {
			t.Errorf("page holds %q unescaped", bad)
		}
	}
	// Structurally: the page has exactly the tags and attributes of the
	// same page rendered from harmless input. (Words like "onerror=" do
	// appear, as escaped text inside value attributes.)
	benign := f.postForm(t, url.Values{"name": {"A"}, "subject": {"S"}, "message": {"M"}, "email": {"x"}}.Encode(), nil)
	if got, want := tagsOf(r.body), tagsOf(benign.body); got != want {
		t.Errorf("hostile input changed the page's markup:\n%s\nwant\n%s", got, want)
	}
	attr := func(name string) string {
		m := regexp.MustCompile(`name="` + name + `" type="[a-z]+" value="([^"]*)"`).FindStringSubmatch(r.body)
		if m == nil {
			t.Fatalf("no %s input on the page", name)
		}
		return html.UnescapeString(m[1])
	}
	if got := attr("name"); got != c25Name {
		t.Errorf("name value %q, want %q", got, c25Name)
	}
	if got := attr("subject"); got != c25Subject {
		t.Errorf("subject value %q, want %q", got, c25Subject)
	}
	if got := attr("email"); got != `"><script>alert(3)</script>` {
		t.Errorf("email value %q", got)
	}
	m := regexp.MustCompile(`(?s)name="message"[^>]*>\n(.*?)</textarea>`).FindStringSubmatch(r.body)
	if m == nil || html.UnescapeString(m[1]) != c25Message {
		t.Errorf("message textarea %q, want %q", m, c25Message)
	}
	if f.host.deliverCalls() != 0 {
		t.Error("delivered an invalid submission")
	}
}

// tagsOf lists the tags of a page with attribute values blanked.
func tagsOf(page string) string {
	page = regexp.MustCompile(`value="[^"]*"`).ReplaceAllString(page, `value=""`)
	return strings.Join(regexp.MustCompile(`<[^>]*>`).FindAllString(page, -1), "\n")
}
