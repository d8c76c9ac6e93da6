package gateway

import (
	"log/slog"
	"time"
)

// Config holds the gateway's tunables; zero values take the defaults
// noted.
type Config struct {
	// PingInterval is how often the server pings each socket (default
	// 15s).
	PingInterval time.Duration
	// PongWait is how long a socket may stay silent (no frame, no pong)
	// before it is considered dead (default 40s; at least twice
	// PingInterval).
	PongWait time.Duration
	// WriteTimeout bounds each write to a socket (default 10s); a client
	// that cannot take a frame in that time is disconnected.
	WriteTimeout time.Duration
	// HeartbeatInterval is how often the gateway renews the routing
	// presence of each agent that has set a status and still has a socket
	// here, and re-checks each socket's token (default 15s). It must stay
	// well below the router's PresenceTTL (45s by default), so that the
	// agents of a node that dies lapse after the TTL and no sooner.
	HeartbeatInterval time.Duration
	// AuthTimeout is how long a new socket has to authenticate (default
	// 10s).
	AuthTimeout time.Duration
	// RequestTimeout bounds the hub work of one request (default 30s).
	RequestTimeout time.Duration
	// MaxFrameBytes is the largest frame a client may send (default
	// 64 KiB); a larger one closes the socket with 1009.
	MaxFrameBytes int
	// SendQueue is how many frames may wait for one socket's writer
	// (default 2048); when a live update finds it full, the socket is
	// closed with CloseTooSlow and the client resumes from its cursor.
	// Inbound messages are committed in groups (up to 128 per
	// transaction, several transactions at once), so updates arrive in
	// bursts of hundreds: the queue must hold a burst, not just a steady
	// trickle. Agent sockets are few, so the room costs little.
	SendQueue int
	// ResumePage is how many feed entries one resume reads per query
	// (default 200).
	ResumePage int
	// MaxResume is the largest gap a resume replays (default 10000). A
	// larger gap ends with resume.done {reset: true}: the client reloads
	// its lists instead.
	MaxResume int
	// AllowedOrigins lists the browser origins (scheme://host[:port]) that
	// may open a socket besides the gateway's own host; "*" allows any.
	// Empty means same-origin only. Requests without an Origin header
	// (non-browser clients) are always allowed: they authenticate by
	// token, not by cookie.
	AllowedOrigins []string
}

func (c Config) withDefaults(log *slog.Logger) Config {
	if c.PingInterval <= 0 {
		c.PingInterval = 15 * time.Second
	}
	if c.PongWait <= 0 {
		c.PongWait = max(40*time.Second, 2*c.PingInterval)
	}
	if c.PongWait < 2*c.PingInterval {
		// A single lost pong must not kill a healthy socket.
		log.Warn("PongWait raised to twice PingInterval", "pong_wait", c.PongWait, "ping_interval", c.PingInterval)
		c.PongWait = 2 * c.PingInterval
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.HeartbeatInterval <= 0 {
		c.HeartbeatInterval = 15 * time.Second
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 64 << 10
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 2048
	}
	if c.ResumePage <= 0 || c.ResumePage > 1000 {
		c.ResumePage = 200
	}
	if c.MaxResume <= 0 {
		c.MaxResume = 10000
	}
	return c
}
