// Package webform is the web-form channel: an HTML form and a JSON endpoint
// whose every valid submission becomes one new ticket (M1, M2).
//
// It owns the submit and form routes (mounted by the hub under
// /channels/{channelID}/), the parsing and validation of submissions
// (urlencoded, multipart fields, JSON), the per-field error messages, the
// body size limit, the honeypot, the per-client rate limit, CORS for the
// JSON endpoint and the embedded form pages. It answers a submission with a
// 2xx only after Host.Deliver returned nil (ack-after-commit).
//
// Texts are delivered exactly as typed (case C25): a name such as
// "<script>…" is data, and safety comes from escaping wherever it is shown,
// as the form pages here do with html/template. Web forms cannot carry a
// reply, so Policy.ReplyVia is "email" and Send refuses.
//
// It imports only the connectors package of this module, never hub.
package webform
