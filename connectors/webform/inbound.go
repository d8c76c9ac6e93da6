package webform

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-hub/switchboard/connectors"
)

// retryAfterUnavailable is the Retry-After hint when the submission could
// not be stored.
const retryAfterUnavailable = 30 * time.Second

// handleSubmit receives one submission. Order of checks: method, channel
// running, rate limit, content type, size, well-formedness, honeypot,
// fields; then Deliver, and only after Deliver returned nil a 2xx
// (ack-after-commit, M2). Bad input never gets a 5xx.
func (c *Connector) handleSubmit(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		c.preflight(w, r)
		return
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		c.fail(w, r, &requestError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: "Send the form with POST."}, nil)
		return
	}
	c.corsHeaders(w, r)

	host := c.currentHost()
	if host == nil {
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfterUnavailable.Seconds())))
		c.fail(w, r, &requestError{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: "This form is not accepting messages right now. Please try again later."}, nil)
		return
	}

	// Every post counts, valid or not, so that probing costs as much as
	// spamming; the limit is checked before the body is read.
	if ok, wait := c.limiter.Allow(clientKey(r, c.settings.TrustForwardedFor)); !ok {
		secs := int(wait / time.Second)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		c.log.Debug("rate limited", "retry_after_s", secs)
		c.fail(w, r, &requestError{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "Too many messages from your network. Please wait " + plural(secs, "second") + " and send the form again."}, nil)
		return
	}

	if enc := r.Header.Get("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		c.fail(w, r, &requestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_encoding",
			Message: "Send the form without Content-Encoding (no compression)."}, nil)
		return
	}
	if _, _, err := mediaType(r.Header.Get("Content-Type")); err != nil {
		c.fail(w, r, err, nil)
		return
	}

	body, err := c.readBody(w, r)
	if err != nil {
		c.fail(w, r, err, nil)
		return
	}

	vals, err := parseForm(r.Header.Get("Content-Type"), body)
	if err != nil {
		c.fail(w, r, err, vals)
		return
	}

	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		key = vals[fieldIdempotency]
	}
	if key != "" {
		if err := validKey(key); err != nil {
			c.fail(w, r, err, nil)
			return
		}
	}

	// A filled honeypot is a bot: it is told "thank you" so it learns
	// nothing, and nothing is stored. Only the fact is logged, never the
	// content (M3).
	if vals[c.settings.HoneypotField] != "" {
		c.log.Info("honeypot field filled; submission dropped")
		c.succeed(w, r, connectors.Receipt{})
		return
	}

	sub, err := validate(&c.settings, vals)
	if err != nil {
		c.fail(w, r, err, vals)
		return
	}

	in := c.inbound(sub, key)
	rec, err := host.Deliver(r.Context(), in)
	if err != nil && connectors.ClassOf(err) != connectors.Retryable {
		// The hub refused the item for good (a classified Permanent or
		// Refused error): asking the sender to retry would not help.
		c.log.Warn("deliver refused", "class", connectors.ClassOf(err).String(), "err", err)
		c.fail(w, r, &requestError{Status: http.StatusUnprocessableEntity, Code: "not_accepted",
			Message: "We cannot accept this message. Please contact us another way.", Err: err}, vals)
		return
	}
	if err != nil {
		// Not stored, so not acknowledged: the sender must be able to
		// tell, and to try again with the same key.
		c.log.Error("deliver failed", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(int(retryAfterUnavailable.Seconds())))
		c.fail(w, r, &requestError{Status: http.StatusServiceUnavailable, Code: "unavailable",
			Message: "We could not save your message just now. Please try again in a minute.", Err: err}, vals)
		return
	}
	c.log.Info("submission stored", "ticket", rec.TicketNumber, "duplicate", rec.Duplicate)
	c.succeed(w, r, rec)
}

// readBody reads the whole body up to the configured limit; a larger body
// is a 413 whether or not it declared its length.
func (c *Connector) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	limit := c.settings.MaxBodyBytes
	tooLarge := &requestError{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large",
		Message: "The form is too large: at most " + sizeText(limit) + ". Shorten the message and send it again."}
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, badRequest("unreadable_body", "The form data could not be read completely.", err)
	}
	return body, nil
}

// inbound turns a validated submission into the normalized item: one new
// ticket, texts exactly as typed (C25), the plain text only (the hub
// sanitizes any HTML; a form has none).
func (c *Connector) inbound(sub submission, key string) connectors.Inbound {
	return connectors.Inbound{
		ChannelID:  c.channelID,
		ExternalID: submissionID(sub, key),
		Sender: connectors.Identity{
			ExternalID:  strings.ToLower(sub.Email),
			DisplayName: sub.Name,
			Email:       sub.Email,
		},
		Subject:   sub.Subject,
		Text:      sub.Message,
		SentAt:    c.now(),
		NewTicket: true,
		Meta:      sub.Extra,
	}
}

// submissionID is the dedup key of a submission. With a client key it is a
// hash of the key and the whole submission: a double-click or a retry sends
// the same content and is stored once, while a different message sent with
// the same key (the Back button restores the page and its hidden key; two
// clients picking the same key) is a new ticket rather than silently
// swallowed. Without a key it is random.
func submissionID(sub submission, key string) string {
	if key == "" {
		return "wf-" + strings.ToLower(rand.Text())
	}
	h := sha256.New()
	field := func(s string) {
		// Length-prefixed, so that no two field lists hash alike.
		_, _ = fmt.Fprintf(h, "%d:%s;", len(s), s)
	}
	field(key)
	field(strings.ToLower(sub.Email))
	field(sub.Name)
	field(sub.Subject)
	field(sub.Message)
	names := slices.Sorted(maps.Keys(sub.Extra))
	for _, n := range names {
		field(n)
		field(sub.Extra[n])
	}
	return "wf-key-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// succeed answers a stored (or honeypotted) submission.
func (c *Connector) succeed(w http.ResponseWriter, r *http.Request, rec connectors.Receipt) {
	w.Header().Set("Cache-Control", "no-store")
	if wantsJSON(r) {
		writeJSON(w, http.StatusCreated, map[string]any{
			"ticket":  rec.TicketNumber,
			"message": "Thank you. We received your message and will answer you by email.",
		})
		return
	}
	if c.settings.RedirectURL != "" {
		http.Redirect(w, r, c.settings.RedirectURL, http.StatusSeeOther)
		return
	}
	c.render(w, http.StatusOK, "thanks", map[string]any{"Title": c.settings.Title, "Ticket": rec.TicketNumber})
}

// fail answers an error. vals, when known, are the fields as sent, so the
// HTML form can be shown again with the input kept.
func (c *Connector) fail(w http.ResponseWriter, r *http.Request, err error, vals map[string]string) {
	w.Header().Set("Cache-Control", "no-store")
	var fe fieldErrors
	var re *requestError
	switch {
	case errors.As(err, &fe):
		if wantsJSON(r) {
			writeJSON(w, http.StatusUnprocessableEntity, map[string]any{
				"error":   "invalid_fields",
				"message": "Some fields need attention.",
				"errors":  map[string]string(fe),
			})
			return
		}
		c.renderForm(w, http.StatusUnprocessableEntity, vals, fe, "")
	case errors.As(err, &re):
		if wantsJSON(r) {
			writeJSON(w, re.Status, map[string]any{"error": re.Code, "message": re.Message})
			return
		}
		if vals != nil {
			c.renderForm(w, re.Status, vals, nil, re.Message)
			return
		}
		c.render(w, re.Status, "problem", map[string]any{
			"Title": c.settings.Title, "Heading": http.StatusText(re.Status), "Message": re.Message,
		})
	default:
		// Not reached: parse and validate return only the two types.
		c.log.Error("unexpected error", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]any{"error": "internal", "message": "Something went wrong on our side."})
	}
}

// wantsJSON decides the response format: JSON for JSON posts and for
// clients that ask for it; HTML for browser form posts.
func wantsJSON(r *http.Request) bool {
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	accept := r.Header.Get("Accept")
	html := strings.Contains(accept, "text/html")
	switch mt {
	case mediaJSON:
		return true
	case mediaURLEncoded, mediaMultipart:
		return !html && strings.Contains(accept, "application/json")
	}
	return !html
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(true) // safe even if a client renders it as HTML
	_ = enc.Encode(v)       // maps of strings and numbers always encode
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// corsHeaders lets pages of the allowed origins read the JSON answers.
func (c *Connector) corsHeaders(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(c.settings.AllowedOrigins) == 0 {
		return false
	}
	w.Header().Add("Vary", "Origin")
	switch {
	case slices.Contains(c.settings.AllowedOrigins, "*"):
		w.Header().Set("Access-Control-Allow-Origin", "*")
	case slices.Contains(c.settings.AllowedOrigins, strings.ToLower(origin)):
		w.Header().Set("Access-Control-Allow-Origin", origin)
	default:
		return false
	}
	w.Header().Set("Access-Control-Expose-Headers", "Retry-After")
	return true
}

// preflight answers a CORS preflight for the JSON endpoint. A browser sends
// a JSON POST only after this said yes, so origins not allowed get 403 here.
func (c *Connector) preflight(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "POST, OPTIONS")
	if r.Header.Get("Origin") == "" || r.Header.Get("Access-Control-Request-Method") == "" {
		w.WriteHeader(http.StatusNoContent) // a plain OPTIONS
		return
	}
	if !c.corsHeaders(w, r) || r.Header.Get("Access-Control-Request-Method") != http.MethodPost {
		writeJSON(w, http.StatusForbidden, map[string]any{"error": "origin_not_allowed",
			"message": "This origin may not post to the form; add it to the channel's allowed_origins."})
		return
	}
	w.Header().Set("Access-Control-Allow-Methods", "POST")
	w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Accept, Idempotency-Key")
	w.Header().Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.Itoa(n) + " " + unit + "s"
}

func sizeText(n int64) string {
	if n%1024 == 0 {
		return strconv.FormatInt(n/1024, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}
