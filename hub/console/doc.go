// Package console is the agent console: a small web page, served by the
// binary, with which a support agent signs in, sets presence, takes
// offered chats and answers them (M1), and sees the end user's contact
// details as the channel collected them (M3).
//
// What it owns:
//   - the static files of the page (web/index.html, web/console.js,
//     web/console.css), embedded with go:embed: plain JavaScript and CSS,
//     no build step, no external resources;
//   - the HTTP headers they are served with: a strict
//     Content-Security-Policy (scripts and styles only from the page's own
//     origin, no inline code), nosniff, no referrer, no framing;
//   - how untrusted content is shown: every string that came from an end
//     user, a channel or another agent reaches the DOM through textContent
//     or createTextNode, never as markup. Message HTML (already sanitized by
//     the hub with bluemonday) is shown as plain text; the agent may open
//     a formatted view, which puts it in an iframe with sandbox="" (no
//     scripts, no forms, no navigation, an opaque origin) and srcdoc.
//
// The page talks only to the agent gateway websocket (package
// hub/gateway, mounted at /agent/ws; docs/agent-protocol.md). The agent's
// token is kept in sessionStorage and sent only in the auth frame, never in
// a URL.
//
// This package imports nothing of the hub: it serves files. Its browser
// tests build a real hub (SQLite, in-process routing, the web-form and
// live-chat connectors, the gateway) and drive headless Chromium.
package console
