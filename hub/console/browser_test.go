package console_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/hub/console"
	"github.com/switchboard-hub/switchboard/hub/store"
)

// These tests drive the console in headless Chromium against a real hub
// (harness_test.go). Each waits on page state, never on time.

// domReport is what the page holds that an injected payload would leave.
type domReport struct {
	Scripts []string `json:"scripts"` // src of every script element
	Iframes int      `json:"iframes"`
	SVGs    int      `json:"svgs"`
	Objects int      `json:"objects"` // object and embed
	Images  int      `json:"images"`
	OnAttrs []string `json:"onAttrs"` // tag.attribute of every on* attribute
	JSURLs  []string `json:"jsURLs"`  // tag.attribute of every javascript: URL
	XSS     string   `json:"xss"`     // typeof window.__xss
}

const domReportJS = `(() => {
	const onAttrs = [], jsURLs = [];
	for (const e of document.querySelectorAll('*')) {
		for (const a of e.attributes) {
			const n = a.name.toLowerCase();
			if (n.startsWith('on')) onAttrs.push(e.tagName + '.' + n);
			if (/^\s*javascript:/i.test(a.value)) jsURLs.push(e.tagName + '.' + n);
		}
	}
	return {
		scripts: Array.from(document.scripts).map(s => s.getAttribute('src') || 'inline'),
		iframes: document.querySelectorAll('iframe').length,
		svgs: document.querySelectorAll('svg').length,
		objects: document.querySelectorAll('object, embed').length,
		images: document.querySelectorAll('img').length,
		onAttrs: onAttrs,
		jsURLs: jsURLs,
		xss: typeof window.__xss,
	};
})()`

// checkDOM fails unless the main document holds nothing a payload could
// have left: only the console's own script, no iframe (unless the caller
// opened that many formatted views), no svg, object, embed or img, no
// on* attribute, no javascript: URL, and window.__xss unset.
func checkDOM(t *testing.T, tb *tab, iframes int) {
	t.Helper()
	r := eval[domReport](tb, domReportJS)
	if !slices.Equal(r.Scripts, []string{"console.js"}) {
		t.Errorf("%s: script elements %q, want only console.js", tb.name, r.Scripts)
	}
	if r.Iframes != iframes || r.SVGs != 0 || r.Objects != 0 || r.Images != 0 {
		t.Errorf("%s: %d iframes (want %d), %d svg, %d object/embed, %d img elements in the main document", tb.name, r.Iframes, iframes, r.SVGs, r.Objects, r.Images)
	}
	if len(r.OnAttrs) > 0 {
		t.Errorf("%s: event handler attributes in the DOM: %q", tb.name, r.OnAttrs)
	}
	if len(r.JSURLs) > 0 {
		t.Errorf("%s: javascript: URLs in the DOM: %q", tb.name, r.JSURLs)
	}
	if r.XSS != "undefined" {
		t.Errorf("%s: window.__xss is %s: an injected payload ran", tb.name, r.XSS)
	}
}

// press clicks an element with its own click(), not with a mouse event at
// its coordinates: the list and the conversation lay themselves out again
// as names, offers, messages and typing indicators come and go, and a
// click at a position measured a moment earlier can hit a neighbour.
func press(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.CSS(sel)),
		chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`document.querySelector(%s).click()`, jsString(sel))),
	)
}

// listItem is the CSS selector of a ticket in the list.
func listItem(ticketID int64) string {
	return fmt.Sprintf(`#tickets li[data-ticket-id="%d"]`, ticketID)
}

// listContact waits for the contact name of a listed ticket to be known
// and returns it.
func listContact(tb *tab, ticketID int64) string {
	tb.t.Helper()
	return until[string](tb, fmt.Sprintf("ticket %d in the list with its contact name", ticketID), fmt.Sprintf(`(() => {
		const e = document.querySelector(%s);
		return e && !e.classList.contains('pending') ? e.textContent : '';
	})()`, jsString(listItem(ticketID)+" .t-contact")))
}

// openTicket clicks a ticket in the list and waits for its view.
func openTicket(tb *tab, tk store.Ticket) {
	tb.t.Helper()
	tb.do("open the ticket", press(listItem(tk.ID)))
	waitTicketView(tb, tk)
}

func waitTicketView(tb *tab, tk store.Ticket) {
	tb.t.Helper()
	until[bool](tb, fmt.Sprintf("the view of ticket #%d", tk.Number), fmt.Sprintf(
		`!document.getElementById('ticket').hidden && document.getElementById('t-number').textContent === %s`,
		jsString(fmt.Sprintf("#%d", tk.Number))))
}

// messageTexts returns the text of the shown messages of a direction
// (in, out, note), in order, once there are at least n of them.
func messageTexts(tb *tab, kind string, n int) []string {
	tb.t.Helper()
	return until[[]string](tb, fmt.Sprintf("%d %s messages", n, kind), fmt.Sprintf(`(() => {
		const ts = Array.from(document.querySelectorAll('#messages li.msg-%s .msg-text'), e => e.textContent);
		return ts.length >= %d ? ts : null;
	})()`, kind, n))
}

// TestC25StoredXSSThroughWebForm replays case C25 against the web-form
// channel and checks that the console shows the hostile name and message
// as literal text, and that nothing in them runs.
func TestC25StoredXSSThroughWebForm(t *testing.T) {
	e := newEnv(t)
	ctype, body := readHTTP(t, "testdata/C25.http")
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Post(e.srv.URL+"/channels/"+webformID+"/submit", ctype, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		t.Fatalf("C25 submission: %s: %s", resp.Status, answer)
	}
	ts := e.ticketsOf(webformID)
	if len(ts) != 1 {
		t.Fatalf("C25 made %d tickets, want 1", len(ts))
	}
	c25 := ts[0]
	const wantName = `"<script>alert("x")</script>`
	if got := e.contactName(c25); got != wantName {
		t.Fatalf("stored contact name %q, want %q", got, wantName)
	}
	ms, err := e.st.Messages(context.Background(), instanceID, c25.ID, 0, 10, true)
	if err != nil || len(ms) != 1 {
		t.Fatalf("C25 messages: %d, %v", len(ms), err)
	}
	if !strings.Contains(ms[0].Text, "Order number: 8812") {
		t.Fatalf("stored text lacks the order number: %q", ms[0].Text)
	}
	// The stored display HTML, if the channel gave any, is sanitized.
	if bad := regexp.MustCompile(`(?i)<\s*(script|iframe|svg)|\son[a-z]+\s*=|javascript:`).FindString(ms[0].HTML); bad != "" {
		t.Fatalf("stored message HTML keeps %q: %q", bad, ms[0].HTML)
	}

	// A payload of our own that would set window.__xss, in every field.
	form := url.Values{
		"name":    {`<img src=x onerror="window.__xss=1">Mallory`},
		"email":   {"mallory2@example.org"},
		"subject": {`<svg onload="window.__xss=2">`},
		"message": {`<script>window.__xss=3</script><img src=x onerror="window.__xss=4"><a href="javascript:window.__xss=5">x</a>`},
	}
	resp, err = noRedirect.PostForm(e.srv.URL+"/channels/"+webformID+"/submit", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		t.Fatalf("second submission: %s", resp.Status)
	}
	mine := e.ticketsOf(webformID)[0] // newest first

	b := newBrowser(t)
	tb := b.tab("agent", true)
	ada := e.agents["Ada"]
	tb.signIn(e.srv.URL, ada.token)
	tb.choose(`input[name="scope"][value="all"]`, "")

	if got := listContact(tb, c25.ID); got != wantName {
		t.Errorf("ticket list: contact name textContent %q, want %q", got, wantName)
	}
	if got := listContact(tb, mine.ID); got != form.Get("name") {
		t.Errorf("ticket list: contact name textContent %q, want %q", got, form.Get("name"))
	}
	if got := eval[string](tb, fmt.Sprintf(`document.querySelector(%s).textContent`, jsString(listItem(mine.ID)+" .t-subject"))); got != mine.Subject {
		t.Errorf("ticket list: subject textContent %q, want %q", got, mine.Subject)
	}

	// The list's filters: search, status, whose.
	shown := func(what string, ids ...int64) {
		t.Helper()
		want := make([]string, len(ids))
		for i, id := range ids {
			want[i] = fmt.Sprint(id)
		}
		until[bool](tb, what, fmt.Sprintf(`(() => {
			const ids = Array.from(document.querySelectorAll('#tickets li'), li => li.dataset.ticketId).join(',');
			return ids === %s && document.getElementById('tickets-empty').hidden === (ids !== '');
		})()`, jsString(strings.Join(want, ","))))
	}
	tb.do("search", chromedp.SendKeys(chromedp.ID("search"), "mallory2@"))
	shown("the search result", mine.ID)
	tb.choose("#search", "")
	shown("all tickets again", mine.ID, c25.ID)
	tb.choose("#status-filter", "closed")
	shown("no closed tickets")
	tb.choose("#status-filter", "active")
	shown("the active tickets", mine.ID, c25.ID)
	tb.choose(`input[name="scope"][value="me"]`, "")
	shown("none of them Ada's")
	tb.choose(`input[name="scope"][value="none"]`, "")
	shown("both unassigned", mine.ID, c25.ID)

	openTicket(tb, c25)
	if got := eval[string](tb, `document.getElementById('contact-name').textContent`); got != wantName {
		t.Errorf("ticket view: contact name textContent %q, want %q", got, wantName)
	}
	if got := eval[string](tb, `document.getElementById('t-subject').textContent`); got != c25.Subject {
		t.Errorf("ticket view: subject textContent %q, want %q", got, c25.Subject)
	}
	texts := messageTexts(tb, "in", 1)
	if texts[0] != ms[0].Text {
		t.Errorf("ticket view: message textContent %q, want the stored text %q", texts[0], ms[0].Text)
	}
	// Visible, not merely present: innerText leaves out what is hidden.
	tb.do("the order number is visible", chromedp.WaitVisible(chromedp.CSS(`#messages li.msg-in .msg-text`)))
	if shown := eval[string](tb, `document.querySelector('#messages li.msg-in .msg-text').innerText`); !strings.Contains(shown, "Order number: 8812") {
		t.Errorf("the message does not show %q: %q", "Order number: 8812", shown)
	}
	checkDOM(t, tb, 0)
	tb.screenshot("c25-ticket")

	openTicket(tb, mine)
	if got := eval[string](tb, `document.getElementById('contact-name').textContent`); got != form.Get("name") {
		t.Errorf("ticket view: contact name textContent %q, want %q", got, form.Get("name"))
	}
	if got := messageTexts(tb, "in", 1)[0]; got != form.Get("message") {
		t.Errorf("ticket view: message textContent %q, want %q", got, form.Get("message"))
	}
	checkDOM(t, tb, 0)
	tb.checkClean(ada.token)
	if tb.requested("/console/x") {
		t.Error("an injected <img src=x> was fetched")
	}
}

// TestMessageHTMLStaysInert delivers a message with hostile HTML through a
// channel that carries HTML: the console shows its text, and the
// formatted view is a sandboxed srcdoc iframe in which nothing runs and
// nothing remote loads.
func TestMessageHTMLStaysInert(t *testing.T) {
	e := newEnv(t)
	const pixel = "https://tracker.example/pixel.gif"
	r := e.probe.deliver(t, connectors.Inbound{
		ExternalID: "html-1", ThreadKey: "html-conv",
		Sender:  connectors.Identity{ExternalID: "u-html", DisplayName: "Hal"},
		Subject: "Formatted",
		Text:    "Hello in plain text",
		HTML: `<p>Hello <b>in HTML</b></p><script>window.__xss=1;alert(1)</script>` +
			`<img src="` + pixel + `" onerror="window.__xss=2"><a href="javascript:window.__xss=3">link</a>` +
			`<iframe src="https://evil.example/"></iframe><svg onload="window.__xss=4"></svg>`,
	})
	tk, err := e.st.Ticket(context.Background(), instanceID, r.ConversationID)
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	tb := b.tab("agent", true)
	ada := e.agents["Ada"]
	tb.signIn(e.srv.URL, ada.token)
	tb.choose(`input[name="scope"][value="all"]`, "")
	listContact(tb, tk.ID)
	openTicket(tb, *tk)
	if got := messageTexts(tb, "in", 1)[0]; got != "Hello in plain text" {
		t.Errorf("message text %q", got)
	}
	checkDOM(t, tb, 0)

	tb.do("open the formatted view", press(`#messages li.msg-in .msg-formatted`))
	frame := until[map[string]any](tb, "the formatted view", `(() => {
		const f = document.querySelector('#messages li.msg-in iframe.msg-html');
		if (!f) return null;
		return {
			sandbox: f.getAttribute('sandbox'),
			srcdocHasScript: /<script/i.test(f.srcdoc),
			// An opaque origin: the page cannot reach into the frame, and so
			// the frame cannot reach out to the page either.
			reachable: (() => { try { return f.contentDocument !== null; } catch (e) { return false; } })(),
		};
	})()`)
	if frame["sandbox"] != "" {
		t.Errorf("formatted view sandbox=%q, want empty (nothing allowed)", frame["sandbox"])
	}
	if frame["srcdocHasScript"] != false {
		t.Error("the stored HTML handed to the frame still has a script element")
	}
	if frame["reachable"] != false {
		t.Error("the formatted view's document is reachable from the page: the sandbox is not in force")
	}
	checkDOM(t, tb, 1)
	tb.screenshot("html-formatted")
	// Nothing of the payload may load: not the pixel (CSP, inherited by
	// the srcdoc document), not the iframe (stripped by the sanitizer).
	if tb.requested("tracker.example") || tb.requested("evil.example") {
		t.Error("the formatted view fetched a remote resource")
	}
	// The browser reports the blocked pixel as a CSP violation: that one
	// console error is the CSP doing its job.
	tb.checkClean(ada.token, "tracker.example")
}

// A mail reply shows its new text, its quoted history collapsed, its
// attachments as downloads, and its inline cid: image inside the formatted
// view (fetched with the agent's token, handed over as a data: URL).
func TestMailQuotedHistoryAndInlineImage(t *testing.T) {
	e := newEnv(t)
	// A 1×1 PNG.
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89" +
		"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")
	r := e.probe.deliver(t, connectors.Inbound{
		ExternalID: "mail-1", ThreadKey: "mail-conv",
		Sender:  connectors.Identity{ExternalID: "alice@example.org", DisplayName: "Alice"},
		Subject: "RE: Order 5521",
		Text:    "Thanks - the photo is below.",
		Quoted:  "________________________________\nFrom: Support\nCould you send us a photo?",
		HTML:    `<p>Thanks - the photo is below.</p><p><img alt="photo" src="cid:photo1@example.org"></p>`,
		Attachments: []connectors.Attachment{
			{Filename: "photo.png", ContentType: "image/png", Data: png, ContentID: "photo1@example.org", Inline: true},
			{Filename: "invoice.pdf", ContentType: "application/pdf", Data: []byte("%PDF-1.4 test")},
		},
	})
	tk, err := e.st.Ticket(context.Background(), instanceID, r.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t)
	tb := b.tab("agent", true)
	ada := e.agents["Ada"]
	tb.signIn(e.srv.URL, ada.token)
	tb.choose(`input[name="scope"][value="all"]`, "")
	listContact(tb, tk.ID)
	openTicket(tb, *tk)
	if got := messageTexts(tb, "in", 1)[0]; got != "Thanks - the photo is below." {
		t.Errorf("new text %q", got)
	}
	q := eval[map[string]any](tb, `(() => {
		const d = document.querySelector('#messages li.msg-in details.msg-quoted');
		return d ? {open: d.open, text: d.querySelector('.msg-quoted-text').textContent,
			downloads: [...document.querySelectorAll('#messages li.msg-in .attachment-download')].map((b) => b.textContent)} : null;
	})()`)
	if q == nil || q["open"] != false || !strings.Contains(q["text"].(string), "Could you send us a photo?") {
		t.Fatalf("quoted history: %v", q)
	}
	if d := fmt.Sprint(q["downloads"]); !strings.Contains(d, "photo.png") || !strings.Contains(d, "invoice.pdf") {
		t.Errorf("attachment downloads: %v", d)
	}
	tb.do("open the formatted view", press(`#messages li.msg-in .msg-formatted`))
	img := until[map[string]any](tb, "the inline image in the formatted view", `(() => {
		const f = document.querySelector('#messages li.msg-in iframe.msg-html');
		if (!f || !f.srcdoc.includes('data:image/png;base64,')) return null;
		return {cid: f.srcdoc.includes('cid:'), sandbox: f.getAttribute('sandbox')};
	})()`)
	if img["cid"] != false || img["sandbox"] != "" {
		t.Errorf("formatted view: %v", img)
	}
	tb.screenshot("mail-inline-image")
	tb.checkClean(ada.token)
}

// TestLiveChatScriptDoesNotRun sends script through the live-chat visitor
// websocket, before and while the agent has the conversation open.
func TestLiveChatScriptDoesNotRun(t *testing.T) {
	e := newEnv(t)
	const name = `<img src=x onerror="window.__xss=1">Eve`
	first := `<script>window.__xss=2; alert("chat")</script>`
	second := `<img src=x onerror="window.__xss=3"><svg onload="alert(4)"></svg><iframe srcdoc="<script>parent.__xss=5</script>"></iframe>`
	v := e.newVisitor(t, name)
	v.say(first)
	tk, err := e.st.Ticket(context.Background(), instanceID, v.conv)
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	tb := b.tab("agent", true)
	ada := e.agents["Ada"]
	tb.signIn(e.srv.URL, ada.token)
	tb.choose(`input[name="scope"][value="all"]`, "")
	if got := listContact(tb, tk.ID); got != name {
		t.Errorf("ticket list: contact name textContent %q, want %q", got, name)
	}
	openTicket(tb, *tk)
	if got := eval[string](tb, `document.getElementById('contact-name').textContent`); got != name {
		t.Errorf("ticket view: contact name textContent %q, want %q", got, name)
	}
	if got := messageTexts(tb, "in", 1); got[0] != first {
		t.Errorf("message textContent %q, want %q", got[0], first)
	}

	// Live: a message that arrives while the ticket is open.
	v.say(second)
	if got := messageTexts(tb, "in", 2); got[1] != second {
		t.Errorf("live message textContent %q, want %q", got[1], second)
	}
	checkDOM(t, tb, 0)
	tb.screenshot("livechat-xss")
	tb.checkClean(ada.token)
}

// TestAgentTakesAndAnswersAChat is the usability flow with two windows:
// Ada goes available, is offered a new chat, accepts and replies; the
// reply shows its delivery state up to "read"; she adds a note and sees
// typing; a reply on a failing channel shows why it failed; she solves
// and transfers tickets to Bob, whose window updates live; a gateway
// restart is bridged by reconnect and resume.
func TestAgentTakesAndAnswersAChat(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	b := newBrowser(t)
	ada, bob := e.agents["Ada"], e.agents["Bob"]
	aw := b.tab("Ada's window", true)
	bw := b.tab("Bob's window", false)
	aw.signIn(e.srv.URL, ada.token)
	// A wrong token is refused in words and not kept.
	bw.do("sign in with a wrong token",
		chromedp.Navigate(e.srv.URL+"/console/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), "sbag_not-a-token"),
		press(`#signin-form button[type="submit"]`),
	)
	refusal := until[string](bw, "the refusal", `document.getElementById('signin').hidden ? '' : document.getElementById('signin-error').textContent`)
	if !strings.Contains(refusal, "refused") || eval[bool](bw, `sessionStorage.getItem('sb.token') !== null`) {
		t.Errorf("wrong token: message %q, token kept: %v", refusal, eval[bool](bw, `sessionStorage.getItem('sb.token') !== null`))
	}
	bw.signIn(e.srv.URL, bob.token)

	aw.choose("#presence", "available")
	until[bool](aw, "presence saved", `sessionStorage.getItem('sb.presence') === 'available'`)
	// Only Ada is available: the chat is offered to her.
	v := e.newVisitor(t, "Grace")
	v.say("Hello, my parcel did not arrive")
	tk, err := e.st.Ticket(ctx, instanceID, v.conv)
	if err != nil {
		t.Fatal(err)
	}
	offer := listItemIn("#offers", tk.ID)
	countdown := until[string](aw, "the offer with its countdown", fmt.Sprintf(`(() => {
		const c = document.querySelector(%s);
		return c && /^\d+ s left$/.test(c.textContent) ? c.textContent : '';
	})()`, jsString(offer+" .countdown")))
	t.Logf("offer shown: %s", countdown)
	aw.screenshot("offer")
	if got := until[string](aw, "the offer's contact", fmt.Sprintf(`(() => { const e = document.querySelector(%s); return e && !e.classList.contains('pending') ? e.textContent : ''; })()`, jsString(offer+" .o-contact"))); got != "Grace" {
		t.Errorf("offer contact %q, want Grace", got)
	}
	aw.do("accept", chromedp.Click(chromedp.CSS(offer+" button.accept")))
	waitTicketView(aw, *tk)
	until[bool](aw, "the offer gone", fmt.Sprintf(`document.querySelector(%s) === null`, jsString(offer)))
	until[bool](aw, "the ticket assigned to Ada", `document.getElementById('t-assignee').textContent === 'assigned to you' && document.getElementById('t-status').textContent === 'open'`)
	if got := messageTexts(aw, "in", 1)[0]; got != "Hello, my parcel did not arrive" {
		t.Errorf("inbound message %q", got)
	}
	// "Mine" is the default list: the accepted chat is in it.
	listContact(aw, tk.ID)

	// The visitor types; Ada sees it.
	v.send(map[string]any{"type": "typing", "active": true})
	until[bool](aw, "the typing indicator", `!document.getElementById('typing').hidden && document.getElementById('typing').textContent === 'Grace is typing…'`)

	// Ada replies; the reply leaves through the outbox and shows its state.
	const reply = "Sorry to hear that! Let me check."
	aw.do("reply",
		chromedp.SendKeys(chromedp.ID("reply-text"), reply),
		press(`#reply-form button[type="submit"]`),
	)
	if got := messageTexts(aw, "out", 1)[0]; got != reply {
		t.Errorf("reply shown as %q", got)
	}
	until[bool](aw, "the reply marked sent", `document.querySelector('#messages li.msg-out .state').textContent === 'sent'`)
	if got := eval[string](aw, `document.getElementById('reply-text').value`); got != "" {
		t.Errorf("the reply box keeps %q after sending", got)
	}
	// The visitor gets it and reads it; the state follows.
	var replyID float64
	for replyID == 0 {
		m := v.next("message.new")["message"].(map[string]any)
		if m["from"] == "agent" && m["text"] == reply {
			replyID = m["id"].(float64)
		}
	}
	v.send(map[string]any{"type": "message.state", "state": "read", "message_ids": []float64{replyID}})
	until[bool](aw, "the reply marked read", `document.querySelector('#messages li.msg-out .state').textContent === 'read'`)
	aw.screenshot("reply-read")

	// An internal note is shown as one.
	aw.do("note",
		chromedp.SendKeys(chromedp.ID("note-text"), "Customer is upset; parcel 8812."),
		press(`#note-form button[type="submit"]`),
	)
	if got := messageTexts(aw, "note", 1)[0]; got != "Customer is upset; parcel 8812." {
		t.Errorf("note shown as %q", got)
	}
	if kind := eval[string](aw, `document.querySelector('#messages li.msg-note .msg-kind').textContent`); kind != "internal note" {
		t.Errorf("note labelled %q", kind)
	}

	// Transfer to Bob: his "Mine" list gets the ticket live.
	aw.do("transfer",
		chromedp.SendKeys(chromedp.ID("transfer-id"), fmt.Sprint(bob.agent.ID)),
		press(`#transfer-form button[type="submit"]`),
	)
	if got := listContact(bw, tk.ID); got != "Grace" {
		t.Errorf("Bob's list shows contact %q", got)
	}
	openTicket(bw, *tk)
	if got := messageTexts(bw, "out", 1)[0]; got != reply {
		t.Errorf("Bob sees reply %q", got)
	}
	if st := eval[string](bw, `document.querySelector('#messages li.msg-out .state').textContent`); st != "read" {
		t.Errorf("Bob sees the reply as %q, want read", st)
	}
	if got := eval[int](bw, `document.querySelectorAll('#messages li.msg-note').length`); got != 1 {
		t.Errorf("Bob sees %d notes, want 1", got)
	}
	until[bool](aw, "Ada's view shows the new assignee", fmt.Sprintf(`document.getElementById('t-assignee').textContent === 'assigned to agent %d'`, bob.agent.ID))

	// A reply that the channel refuses for good shows the reason.
	pr := e.probe.deliver(t, connectors.Inbound{ExternalID: "p-1", ThreadKey: "p-conv",
		Sender: connectors.Identity{ExternalID: "u-pat", DisplayName: "Pat"}, Text: "Can you mail me the invoice?"})
	ptk, err := e.st.Ticket(ctx, instanceID, pr.ConversationID)
	if err != nil {
		t.Fatal(err)
	}
	// Ada is available with room: the new ticket is offered to her too.
	until[bool](aw, "the offer of the probe ticket", fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(listItemIn("#offers", ptk.ID))))
	aw.choose(`input[name="scope"][value="all"]`, "")
	listContact(aw, ptk.ID)
	openTicket(aw, *ptk)
	aw.do("a reply that fails",
		chromedp.SendKeys(chromedp.ID("reply-text"), "Here it is "+failMarker),
		press(`#reply-form button[type="submit"]`),
	)
	reason := until[string](aw, "the failed state with its reason", `(() => {
		const s = document.querySelector('#messages li.msg-out .state');
		const r = document.querySelector('#messages li.msg-out .state-reason');
		return s && s.textContent === 'failed' && r ? r.textContent : '';
	})()`)
	if reason != failReason {
		t.Errorf("failure reason %q, want %q", reason, failReason)
	}
	aw.screenshot("reply-failed")

	// Solve it; reopen becomes possible.
	aw.do("solve", press(`.status-actions button[data-status="solved"]`))
	until[bool](aw, "the ticket solved", `document.getElementById('t-status').textContent === 'solved' && !document.querySelector('.status-actions button[data-status="open"]').hidden`)

	// A gateway restart: the sockets close; a message arrives meanwhile;
	// the console reconnects and resumes from its cursor.
	socketsBefore := aw.sockets()
	e.stopGateway()
	e.probe.deliver(t, connectors.Inbound{ExternalID: "p-2", ThreadKey: "p-conv",
		Sender: connectors.Identity{ExternalID: "u-pat", DisplayName: "Pat"}, Text: "Did you send it?"})
	e.startGateway()
	if got := messageTexts(aw, "in", 2)[1]; got != "Did you send it?" {
		t.Errorf("after the restart the view shows %q", got)
	}
	until[bool](aw, "reconnected", `document.querySelector('#conn.conn-up') !== null`)
	if n := aw.sockets(); n <= socketsBefore {
		t.Errorf("no new socket after the gateway restart (%d before, %d after)", socketsBefore, n)
	}
	bw.screenshot("bob")
	// The follow-up reopened the ticket (hub rule); the view follows.
	until[bool](aw, "the ticket reopened by the follow-up", `document.getElementById('t-status').textContent !== 'solved'`)

	checkDOM(t, aw, 0)
	checkDOM(t, bw, 0)
	// A reconnect attempt that met the restarting gateway is logged by
	// Chromium itself.
	aw.checkClean(ada.token, "WebSocket connection to")
	bw.checkClean(bob.token, "WebSocket connection to")
}

func listItemIn(list string, ticketID int64) string {
	return fmt.Sprintf(`%s li[data-ticket-id="%d"]`, list, ticketID)
}

// TestCSPBlocksInjectedHandlers checks the second wall on its own, and
// that the detectors of these tests are not blind: markup injected into
// the page on purpose (what console.js must never do) is seen by checkDOM,
// and the Content-Security-Policy keeps its handlers and scripts from
// running.
func TestCSPBlocksInjectedHandlers(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("/console/", console.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	b := newBrowser(t)
	tb := b.tab("page", true)
	tb.do("load the console", chromedp.Navigate(srv.URL+"/console/"), chromedp.WaitVisible(chromedp.ID("token")))
	eval[bool](tb, `(() => {
		window.__violations = [];
		document.addEventListener('securitypolicyviolation', (e) => window.__violations.push(e.effectiveDirective));
		const d = document.createElement('div');
		document.body.append(d);
		d.insertAdjacentHTML('beforeend',
			'<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" onload="window.__xss=1;alert(1)" onerror="window.__xss=2;alert(2)">');
		const s = document.createElement('script');
		s.textContent = 'window.__xss = 3; alert(3)';
		document.body.append(s);
		return true;
	})()`)
	directives := until[[]string](tb, "CSP violation reports", `window.__violations.length >= 2 ? window.__violations : null`)
	t.Logf("CSP blocked: %q", directives)
	r := eval[domReport](tb, domReportJS)
	if r.XSS != "undefined" {
		t.Errorf("window.__xss is %s: the CSP let an injected handler or script run", r.XSS)
	}
	if r.Images != 1 || len(r.OnAttrs) != 2 || !slices.Contains(r.Scripts, "inline") {
		t.Errorf("the DOM check missed the injected markup: %+v", r)
	}
	tb.mu.Lock()
	dialogs := tb.dialogs
	tb.mu.Unlock()
	if len(dialogs) > 0 {
		t.Errorf("dialogs opened: %q", dialogs)
	}
}
