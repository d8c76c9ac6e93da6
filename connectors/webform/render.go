package webform

import (
	"bytes"
	"crypto/rand"
	"net/http"
	"slices"
	"strings"
)

// formField is one field of the served form.
type formField struct {
	Name, Label, Type, Autocomplete string
	Value, Error                    string
	Required, Multiline             bool
}

// fieldProblem is one line of the error summary above the form.
type fieldProblem struct {
	Name, Label, Message string
}

// handleForm serves the plain HTML form that posts to submit.
func (c *Connector) handleForm(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		c.render(w, http.StatusMethodNotAllowed, "problem", map[string]any{
			"Title": c.settings.Title, "Heading": http.StatusText(http.StatusMethodNotAllowed),
			"Message": "Open the form with GET.",
		})
		return
	}
	w.Header().Set("Cache-Control", "no-store") // each page carries its own idempotency key
	c.renderForm(w, http.StatusOK, nil, nil, "")
}

// renderForm shows the form with the values as sent and the errors next to
// their fields. The values go through html/template unchanged, which escapes
// them for their context (C25): the page shows hostile input as text.
func (c *Connector) renderForm(w http.ResponseWriter, status int, vals map[string]string, errs fieldErrors, notice string) {
	s := &c.settings
	fields := []formField{
		{Name: fieldName, Label: "Your name", Type: "text", Autocomplete: "name", Required: s.required(fieldName)},
		{Name: fieldEmail, Label: "Email address", Type: "email", Autocomplete: "email", Required: true},
		{Name: fieldSubject, Label: "Subject", Type: "text", Autocomplete: "off", Required: s.required(fieldSubject)},
		{Name: fieldMessage, Label: "Message", Multiline: true, Required: true},
	}
	for _, f := range s.ExtraFields {
		fields = append(fields, formField{Name: f.Name, Label: f.Label, Type: "text", Required: f.Required, Multiline: f.Multiline})
	}
	var problems []fieldProblem
	for i := range fields {
		f := &fields[i]
		f.Value = vals[f.Name]
		if f.Multiline {
			f.Value = normalizeNewlines(f.Value)
		}
		f.Error = errs[f.Name]
		if f.Error != "" {
			problems = append(problems, fieldProblem{Name: f.Name, Label: f.Label, Message: f.Error})
		}
	}
	// Errors on fields the form does not show (a file input of a custom
	// form) still belong in the summary.
	var others []string
	for name := range errs {
		if !slices.ContainsFunc(fields, func(f formField) bool { return f.Name == name }) {
			others = append(others, name)
		}
	}
	slices.Sort(others)
	for _, name := range others {
		problems = append(problems, fieldProblem{Name: name, Label: name, Message: errs[name]})
	}

	key := vals[fieldIdempotency]
	if validKey(key) != nil {
		// A fresh key per page: a double click or a reload of the posted
		// page is stored once (see submissionID).
		key = strings.ToLower(rand.Text())
	}
	c.render(w, status, "form", map[string]any{
		"Title":          s.Title,
		"Notice":         notice,
		"Errors":         problems,
		"Fields":         fields,
		"Honeypot":       s.HoneypotField,
		"IdempotencyKey": key,
	})
}

// render executes a page into a buffer first, so that a template error can
// never leave half a page behind a 200.
func (c *Connector) render(w http.ResponseWriter, status int, name string, data any) {
	var buf bytes.Buffer
	if err := c.pages.ExecuteTemplate(&buf, name, data); err != nil {
		c.log.Error("render page", "page", name, "err", err)
		http.Error(w, "The page could not be shown.", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", c.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
