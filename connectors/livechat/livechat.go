package livechat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	"github.com/switchboard-hub/switchboard/connectors"
)

// Kind is the channel kind of this connector.
const Kind connectors.Kind = "livechat"

// Secret names in Config.Secrets.
const (
	// SecretVisitor signs visitor tokens; required, at least 16 bytes.
	SecretVisitor = "visitor_secret"
	// SecretVisitorPrevious, optional, still verifies tokens after a
	// rotation; tokens are re-issued under the new secret on the next
	// session.start.
	SecretVisitorPrevious = "visitor_secret_previous"

	minSecretLen = 16
)

// Timing of the visitor websocket.
const (
	writeWait   = 10 * time.Second // one frame write
	pongWait    = 60 * time.Second // silence after which a socket is dead
	pingPeriod  = 25 * time.Second // under pongWait, and under common proxy idle timeouts
	hostTimeout = 20 * time.Second // one Host call for one frame
	closeGrace  = time.Second      // waiting for the peer's close frame
	// historyPage bounds the messages of one session.ready or history
	// frame; the widget asks for more with resume.
	historyPage = 200
	// maxBadFrames closes a connection that keeps sending garbage.
	maxBadFrames = 16
	// maxSessionStarts bounds OpenThread/History work one socket causes.
	maxSessionStarts = 32
	// typingEvery throttles visitor typing signals passed to the host.
	typingEvery = 2 * time.Second
)

type lifecycle int

const (
	stateNew lifecycle = iota
	stateRunning
	stateStopped
)

// Connector is the live-chat channel of one channel id.
type Connector struct {
	channelID  string
	instanceID string
	settings   Settings
	log        *slog.Logger
	ps         connectors.PubSub
	now        func() time.Time
	tokens     *signer
	upgrader   websocket.Upgrader
	readLimit  int64
	assets     assets

	mu       sync.Mutex
	state    lifecycle
	host     connectors.Host
	runCtx   context.Context
	cancel   context.CancelFunc
	conns    map[*conn]struct{}
	rooms    map[int64]*room
	visitors map[string]*visitor
	wg       sync.WaitGroup // one per serveWS call

	hooks testHooks
}

// testHooks lets in-package tests observe events they would otherwise have
// to poll for. Nil in production.
type testHooks struct {
	dropped      func(c *conn)
	unsubscribed func(conversationID int64)
	connClosed   func(c *conn)
}

// visitor is the per-node state of one visitor across its tabs.
type visitor struct {
	refs   int
	bucket bucket
}

// New builds a live-chat connector from cfg without I/O. Settings are
// decoded strictly; the visitor secret must be in cfg.Secrets.
func New(cfg connectors.Config) (*Connector, error) {
	if cfg.ChannelID == "" {
		return nil, errors.New("livechat: Config.ChannelID is required")
	}
	if cfg.PubSub == nil {
		return nil, errors.New("livechat: Config.PubSub is required (agent replies reach visitor sockets through it)")
	}
	s, err := decodeSettings(cfg.Settings)
	if err != nil {
		return nil, fmt.Errorf("livechat: %w", err)
	}
	// The error names the secret, never its value.
	secret := cfg.Secrets[SecretVisitor]
	if secret == "" {
		return nil, fmt.Errorf("livechat: secret %q is required (it signs visitor tokens)", SecretVisitor)
	}
	if len(secret) < minSecretLen {
		return nil, fmt.Errorf("livechat: secret %q must be at least %d bytes", SecretVisitor, minSecretLen)
	}
	keys := [][]byte{[]byte(secret)}
	if prev := cfg.Secrets[SecretVisitorPrevious]; prev != "" {
		keys = append(keys, []byte(prev))
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	k := &Connector{
		channelID:  cfg.ChannelID,
		instanceID: cfg.InstanceID,
		settings:   s,
		log:        log.With("component", "connectors/livechat", "channel", cfg.ChannelID),
		ps:         cfg.PubSub,
		now:        now,
		tokens:     &signer{channelID: cfg.ChannelID, keys: keys, ttl: time.Duration(s.TokenTTL), now: now},
		// A frame carries at most MaxMessageLength runes of text; JSON
		// may escape one rune as a 12-byte surrogate pair, plus the
		// other fields.
		readLimit: int64(s.MaxMessageLength)*12 + 4096,
		assets:    newAssets(),
		conns:     map[*conn]struct{}{},
		rooms:     map[int64]*room{},
		visitors:  map[string]*visitor{},
	}
	k.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		// Small read buffer, pooled write buffer: an idle socket holds
		// 1 KiB of buffers, not 8 KiB.
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     k.checkOrigin,
	}
	return k, nil
}

// Factory is New as a connectors.Factory, for the registry.
func Factory(cfg connectors.Config) (connectors.Connector, error) {
	k, err := New(cfg)
	if err != nil {
		return nil, err
	}
	return k, nil
}

// Kind returns "livechat".
func (k *Connector) Kind() connectors.Kind { return Kind }

// Settings returns the decoded settings with defaults applied.
func (k *Connector) Settings() Settings {
	s := k.settings
	s.AllowedOrigins = slices.Clone(s.AllowedOrigins) // the caller's copy
	return s
}

// Policy: a live session (ThreadingSession) without reply window; plain
// text up to MaxMessageLength; no attachments yet; the contact fields are
// only those the visitor may type in (M3).
func (k *Connector) Policy() connectors.Policy {
	return connectors.Policy{
		MaxTextLength: k.settings.MaxMessageLength,
		Attachments:   false,
		HTML:          false,
		Threading:     connectors.ThreadingSession,
		ContactFields: []string{"name", "email"},
	}
}

// Start opens the visitor websocket to new connections. The connector runs
// until Stop: the context of Start bounds only the start itself, because
// the host calls Stop to end receiving.
func (k *Connector) Start(ctx context.Context, host connectors.Host) error {
	if host == nil {
		return errors.New("livechat: Start: nil host")
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("livechat: Start: %w", err)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state != stateNew {
		return errors.New("livechat: Start called twice or after Stop")
	}
	k.host = host
	k.runCtx, k.cancel = context.WithCancel(context.WithoutCancel(ctx))
	k.state = stateRunning
	k.log.Info("live chat started", "max_message_length", k.settings.MaxMessageLength, "allowed_origins", len(k.settings.AllowedOrigins))
	return nil
}

// Stop refuses new sockets, closes the open ones with 1001 (going away),
// ends the pub/sub subscriptions and waits for the connection goroutines
// until ctx ends. It is safe to call before or without Start, and twice.
func (k *Connector) Stop(ctx context.Context) error {
	k.mu.Lock()
	wasRunning := k.state == stateRunning
	k.state = stateStopped
	open := make([]*conn, 0, len(k.conns))
	for c := range k.conns {
		open = append(open, c)
	}
	k.mu.Unlock()
	if !wasRunning {
		return nil
	}
	for _, c := range open {
		c.requestClose(websocket.CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { k.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		// Peers that do not answer the close frame are cut off, and Host
		// calls still running are cancelled (no ack follows them).
		for _, c := range open {
			c.kill()
		}
		k.cancel()
		<-done
	}
	k.cancel() // after the sockets, so that their last Host calls could finish
	k.log.Info("live chat stopped", "closed", len(open))
	return nil
}

// Routes are mounted by the host under /channels/{channelID}/.
func (k *Connector) Routes() []connectors.Route {
	return []connectors.Route{
		{Method: http.MethodGet, Path: "ws", Handler: http.HandlerFunc(k.serveWS)},
		{Method: http.MethodGet, Path: "widget.js", Handler: k.assets.widgetJS},
		{Method: http.MethodGet, Path: "widget.css", Handler: k.assets.widgetCSS},
		{Method: http.MethodGet, Path: "demo", Handler: k.assets.demo},
	}
}

// Send delivers an agent reply to the visitor's sockets on every node
// (M1): it is published on the conversation's topic, and each node that
// holds a socket of the conversation writes it out. The hub stored the
// message before calling Send, so a visitor with no socket open sees it in
// the history of their next session: the message is sent either way.
func (k *Connector) Send(ctx context.Context, msg connectors.Outbound) (connectors.SendResult, error) {
	if msg.ConversationID <= 0 {
		return connectors.SendResult{}, connectors.NewError(connectors.Permanent, "no_conversation", "live chat reply has no conversation", nil)
	}
	if msg.MessageID <= 0 {
		return connectors.SendResult{}, connectors.NewError(connectors.Permanent, "no_message_id", "live chat reply has no message id", nil)
	}
	if len(msg.Attachments) > 0 {
		return connectors.SendResult{}, connectors.NewError(connectors.Refused, "attachments_unsupported", "live chat does not carry attachments yet", nil)
	}
	if !utf8.ValidString(msg.Text) {
		return connectors.SendResult{}, connectors.NewError(connectors.Refused, "invalid_utf8", "reply text is not valid UTF-8", nil)
	}
	if strings.TrimSpace(msg.Text) == "" {
		// The widget shows plain text only (Policy.HTML is false).
		return connectors.SendResult{}, connectors.NewError(connectors.Refused, "empty_text", "live chat reply has no text", nil)
	}
	if n := utf8.RuneCountInString(msg.Text); n > k.settings.MaxMessageLength {
		return connectors.SendResult{}, connectors.NewError(connectors.Refused, "text_too_long",
			fmt.Sprintf("reply has %d characters; live chat allows %d", n, k.settings.MaxMessageLength), nil)
	}
	// The time the record shows (history), not the time of sending.
	created := msg.CreatedAt.UTC()
	if msg.CreatedAt.IsZero() {
		created = k.now().UTC()
	}
	env := envelope{Kind: envMessage, Message: &wireMessage{
		ID: msg.MessageID, From: fromAgent, Author: msg.AuthorName, Text: msg.Text,
		State: string(connectors.DeliverySent), Automatic: msg.Automatic, CreatedAt: created,
	}}
	if err := k.publish(ctx, msg.ConversationID, env); err != nil {
		return connectors.SendResult{}, connectors.NewError(connectors.Retryable, "pubsub", "could not reach the visitor's node", err)
	}
	return connectors.SendResult{ExternalID: outboundExternalID(msg.ConversationID, msg.MessageID), State: connectors.DeliverySent}, nil
}

// SendSignal shows an agent's typing ("typing", "typing_stop") or reading
// ("seen") to the visitor's tabs.
func (k *Connector) SendSignal(ctx context.Context, s connectors.Signal) error {
	if s.ConversationID <= 0 {
		return connectors.NewError(connectors.Permanent, "no_conversation", "signal has no conversation", nil)
	}
	switch s.Kind {
	case envTyping, envTypingStop, envSeen:
	default:
		return fmt.Errorf("livechat: signal kind %q: %w", s.Kind, connectors.ErrUnsupported)
	}
	if err := k.publish(ctx, s.ConversationID, envelope{Kind: s.Kind, Author: s.From}); err != nil {
		return connectors.NewError(connectors.Retryable, "pubsub", "could not reach the visitor's node", err)
	}
	return nil
}

// topic is the pub/sub topic of one conversation of this channel.
func (k *Connector) topic(conversationID int64) string {
	return "livechat:" + k.channelID + ":" + strconv.FormatInt(conversationID, 10)
}

func (k *Connector) publish(ctx context.Context, conversationID int64, env envelope) error {
	env.V = ProtocolVersion
	b, err := json.Marshal(env)
	if err != nil {
		return fmt.Errorf("encode envelope: %w", err)
	}
	if err := k.ps.Publish(ctx, k.topic(conversationID), b); err != nil {
		return fmt.Errorf("publish %s: %w", k.topic(conversationID), err)
	}
	return nil
}

// inboundExternalID is the dedup key of a visitor message: a resend of
// the same client id after a reconnect is stored once.
func inboundExternalID(visitorID, clientID string) string {
	return "lc:" + visitorID + ":" + clientID
}

// clientIDOf returns the client id of a visitor message of visitorID, from
// its external id.
func clientIDOf(visitorID, externalID string) string {
	id, ok := strings.CutPrefix(externalID, "lc:"+visitorID+":")
	if !ok {
		return ""
	}
	return id
}

// outboundExternalID names an agent reply on this channel. It holds the
// conversation so that a visitor's read receipt (message.state) can only
// ever name messages of their own conversation.
func outboundExternalID(conversationID, messageID int64) string {
	return "lc-out:" + strconv.FormatInt(conversationID, 10) + ":" + strconv.FormatInt(messageID, 10)
}

// allow spends one message of a visitor's rate limit.
func (k *Connector) allow(visitorID string) (bool, time.Duration) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.visitors[visitorID]
	if v == nil { // the conn holds a ref while it has a session
		return false, time.Second
	}
	return v.bucket.take(k.now(), k.settings.RateLimit.PerMinute, k.settings.RateLimit.Burst)
}

func (k *Connector) acquireVisitor(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v := k.visitors[id]
	if v == nil {
		v = &visitor{}
		k.visitors[id] = v
	}
	v.refs++
}

func (k *Connector) releaseVisitor(id string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if v := k.visitors[id]; v != nil {
		if v.refs--; v.refs <= 0 {
			delete(k.visitors, id)
		}
	}
}

var (
	_ connectors.Connector    = (*Connector)(nil)
	_ connectors.HTTPRoutes   = (*Connector)(nil)
	_ connectors.SignalSender = (*Connector)(nil)
	_ connectors.Factory      = Factory
)
