package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/switchboard-hub/switchboard/connectors"
	"github.com/switchboard-hub/switchboard/connectors/email"
	"github.com/switchboard-hub/switchboard/connectors/livechat"
	"github.com/switchboard-hub/switchboard/connectors/webform"
	"github.com/switchboard-hub/switchboard/hub"
	"github.com/switchboard-hub/switchboard/hub/blob"
	"github.com/switchboard-hub/switchboard/hub/gateway"
	"github.com/switchboard-hub/switchboard/hub/routing"
	"github.com/switchboard-hub/switchboard/hub/routing/memroute"
	"github.com/switchboard-hub/switchboard/hub/routing/redisroute"
	"github.com/switchboard-hub/switchboard/hub/store"
)

type serveOptions struct {
	*options
	Demo          string
	OperatorToken string
	OfferTimeout  time.Duration
	PresenceTTL   time.Duration
	PublicURL     string
	RedisPrefix   string
	DebugAddr     string
	SMTPAddr      string
	SMTPHostname  string
	SMTPTLSCert   string
	SMTPTLSKey    string
	// envErrs holds environment values that could not be read, reported
	// at start rather than silently replaced by the default.
	envErrs []error
}

func serveCommand(o *options) *cobra.Command {
	so := &serveOptions{options: o}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a hub node (embedded default with no flags)",
		Long: `Run a hub node.

With no flags it runs the embedded default: SQLite, attachments and a demo
instance under ./data, routing in-process. With --database postgres://… and
--redis redis://… any number of nodes share one Postgres and one Redis.`,
		RunE: func(cmd *cobra.Command, _ []string) error { return serve(cmd.Context(), so) },
	}
	f := cmd.Flags()
	f.StringVar(&so.Demo, "demo", env("SWITCHBOARD_DEMO", "auto"), "seed a demo instance and agent: auto (only on the embedded default), on, off (env SWITCHBOARD_DEMO)")
	f.StringVar(&so.OperatorToken, "operator-token", env("SWITCHBOARD_OPERATOR_TOKEN", ""), "token for the admin API; default: generated into <data>/operator-token on the embedded default (env SWITCHBOARD_OPERATOR_TOKEN)")
	f.DurationVar(&so.OfferTimeout, "offer-timeout", so.envDuration("SWITCHBOARD_OFFER_TIMEOUT", 30*time.Second), "how long an agent has to accept an offered ticket (env SWITCHBOARD_OFFER_TIMEOUT)")
	f.DurationVar(&so.PresenceTTL, "presence-ttl", so.envDuration("SWITCHBOARD_PRESENCE_TTL", 45*time.Second), "how long an agent stays present without a heartbeat (env SWITCHBOARD_PRESENCE_TTL)")
	f.StringVar(&so.RedisPrefix, "redis-prefix", env("SWITCHBOARD_REDIS_PREFIX", "sb:"), "prefix of every Redis key and channel, to share one Redis between deployments (env SWITCHBOARD_REDIS_PREFIX)")
	f.StringVar(&so.DebugAddr, "debug-addr", env("SWITCHBOARD_DEBUG_ADDR", ""), "serve Go's pprof profiles on this separate address, e.g. 127.0.0.1:6060; off when empty (env SWITCHBOARD_DEBUG_ADDR)")
	f.StringVar(&so.PublicURL, "public-url", env("SWITCHBOARD_PUBLIC_URL", ""), "the URL users reach this node at, for printed links (env SWITCHBOARD_PUBLIC_URL)")
	f.StringVar(&so.SMTPAddr, "smtp-addr", env("SWITCHBOARD_SMTP_ADDR", ""), "accept mail for email channels with inbound_smtp on this address, e.g. :25; off when empty (env SWITCHBOARD_SMTP_ADDR)")
	f.StringVar(&so.SMTPHostname, "smtp-hostname", env("SWITCHBOARD_SMTP_HOSTNAME", ""), "the name the SMTP listener greets with; default: the host name (env SWITCHBOARD_SMTP_HOSTNAME)")
	f.StringVar(&so.SMTPTLSCert, "smtp-tls-cert", env("SWITCHBOARD_SMTP_TLS_CERT", ""), "certificate (PEM) for STARTTLS on the SMTP listener (env SWITCHBOARD_SMTP_TLS_CERT)")
	f.StringVar(&so.SMTPTLSKey, "smtp-tls-key", env("SWITCHBOARD_SMTP_TLS_KEY", ""), "private key (PEM) for STARTTLS on the SMTP listener (env SWITCHBOARD_SMTP_TLS_KEY)")
	return cmd
}

func (so *serveOptions) envDuration(name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		so.envErrs = append(so.envErrs, fmt.Errorf("%s=%q: not a duration (e.g. 45s, 2m); fix or unset it", name, v))
		return def
	}
	return d
}

// registry lists the channel kinds this binary carries. smtp is the
// node's inbound SMTP listener, nil when it has none.
func registry(smtp *email.SMTPServer) *connectors.Registry {
	r := connectors.NewRegistry()
	must(r.Register(livechat.Kind, livechat.Factory))
	must(r.Register(webform.Kind, webform.Factory))
	must(r.Register(email.Kind, email.NewFactory(email.Options{SMTPServer: smtp})))
	return r
}

func must(err error) {
	if err != nil {
		panic(err) // programming error: a kind registered twice
	}
}

// minPresenceTTL is the shortest --presence-ttl: agents' presence is
// renewed every third of it, and a renewal must have time to arrive.
const minPresenceTTL = 3 * time.Second

// heartbeatFor returns how often the gateway renews an agent's presence:
// 15 s, or a third of a shorter TTL in whole seconds (as the agent
// protocol's ready frame states it), so that an agent with a live socket
// never lapses between two renewals (a lost one included).
func heartbeatFor(ttl time.Duration) time.Duration {
	return min(15*time.Second, (ttl / 3).Truncate(time.Second))
}

func serve(ctx context.Context, o *serveOptions) error {
	if err := errors.Join(o.envErrs...); err != nil {
		return err
	}
	if o.PresenceTTL < minPresenceTTL {
		return fmt.Errorf("--presence-ttl %s: must be at least %s (agents renew their presence every third of it)", o.PresenceTTL, minPresenceTTL)
	}
	if o.OfferTimeout <= 0 {
		return fmt.Errorf("--offer-timeout %s: must be positive", o.OfferTimeout)
	}
	log := o.logger()
	embedded := o.Database == "" && o.Redis == ""

	st, err := store.Open(ctx, o.databaseDSN())
	if err != nil {
		return err
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		return err
	}

	rcfg := routing.Config{OfferTimeout: o.OfferTimeout, PresenceTTL: o.PresenceTTL}
	var (
		router routing.Router
		bus    routing.Bus
		rdb    *redis.Client
	)
	if o.Redis != "" {
		ropt, err := redis.ParseURL(o.Redis)
		if err != nil {
			return fmt.Errorf("--redis: %w", err)
		}
		rdb = redis.NewClient(ropt)
		defer rdb.Close()
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = rdb.Ping(pctx).Err()
		cancel()
		if err != nil {
			return fmt.Errorf("connect to redis: %w", err)
		}
		router = redisroute.New(rdb, redisroute.Config{Prefix: o.RedisPrefix, Config: rcfg})
		bus = redisroute.NewBus(rdb, redisroute.BusConfig{Prefix: o.RedisPrefix, Logger: log})
	} else {
		router = memroute.New(rcfg)
		bus = memroute.NewBus()
	}
	defer bus.Close()

	blobs, err := blob.NewDir(o.blobDir())
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	smtpSrv, smtpLn, err := o.smtpListener(log)
	if err != nil {
		return err
	}
	conns := registry(smtpSrv)
	h, err := hub.New(hub.Deps{Store: st, Router: router, Bus: bus, Blobs: blobs, Connectors: conns, Logger: log, Metrics: reg}, hub.Config{})
	if err != nil {
		return err
	}

	seedDemo := o.Demo == "on" || (o.Demo == "auto" && embedded)
	var demo *demoInfo
	if seedDemo {
		if demo, err = ensureDemo(ctx, st, o.DataDir); err != nil {
			return fmt.Errorf("demo instance: %w", err)
		}
	}
	opToken := o.OperatorToken
	if opToken == "" && embedded {
		if opToken, err = fileToken(filepath.Join(o.DataDir, "operator-token"), "sbop_"); err != nil {
			return err
		}
	}

	runCtx, stopLoops := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLoops()
	if err := h.Start(runCtx); err != nil {
		return err
	}
	gw := gateway.New(h, gateway.Config{HeartbeatInterval: heartbeatFor(o.PresenceTTL)}, log)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", readyz(st, rdb))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/channels/{channel}/{path...}", h.ChannelHandler())
	mux.Handle("/agent/ws", gw)
	mux.Handle("GET /agent/attachments/{id}", gateway.AttachmentHandler(h, log))
	mountExtras(mux, h, st, conns, opToken, log)

	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.Addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	base := o.PublicURL
	if base == "" {
		base = "http://" + displayAddr(ln.Addr().String())
	}
	log.Info("switchboard is running", "url", base, "database", st.Dialect(), "routing", routingName(o.Redis), "version", version)
	if demo != nil {
		log.Info("demo: agent console", "url", base+"/console/", "login_token", demo.AgentToken, "agent", demo.AgentEmail)
		log.Info("demo: live-chat page", "url", base+"/channels/"+demo.ChatChannel+"/demo")
		log.Info("demo: web form", "url", base+"/channels/"+demo.FormChannel+"/form")
	}
	if opToken != "" && o.OperatorToken == "" {
		log.Info("admin API", "url", base+"/admin/v1/", "operator_token_file", filepath.Join(o.DataDir, "operator-token"))
	}

	if o.DebugAddr != "" {
		go serveDebug(o.DebugAddr, log)
	}
	errc := make(chan error, 2)
	go func() { errc <- fmt.Errorf("http server: %w", srv.Serve(ln)) }()
	if smtpSrv != nil {
		log.Info("smtp listener", "addr", smtpLn.Addr().String())
		go func() {
			if err := smtpSrv.Serve(smtpLn); err != nil && !errors.Is(err, net.ErrClosed) {
				errc <- fmt.Errorf("smtp listener: %w", err)
			}
		}()
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}

	// Graceful shutdown: stop taking requests, close agent sockets with a
	// reason (clients resume elsewhere), let the outbox finish its batch.
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if smtpSrv != nil {
		_ = smtpSrv.Close()
	}
	gw.Shutdown(sctx)
	stopLoops()
	h.Wait(sctx)
	h.DispatchNow(sctx)
	log.Info("stopped")
	return nil
}

// smtpListener opens the node's inbound SMTP listener when --smtp-addr is
// set.
func (o *serveOptions) smtpListener(log *slog.Logger) (*email.SMTPServer, net.Listener, error) {
	if o.SMTPAddr == "" {
		return nil, nil, nil
	}
	cfg := email.SMTPServerConfig{Domain: o.SMTPHostname, Logger: log}
	if cfg.Domain == "" {
		cfg.Domain, _ = os.Hostname()
	}
	switch {
	case o.SMTPTLSCert != "" && o.SMTPTLSKey != "":
		cert, err := tls.LoadX509KeyPair(o.SMTPTLSCert, o.SMTPTLSKey)
		if err != nil {
			return nil, nil, fmt.Errorf("--smtp-tls-cert/--smtp-tls-key: %w", err)
		}
		cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case o.SMTPTLSCert != "" || o.SMTPTLSKey != "":
		return nil, nil, errors.New("--smtp-tls-cert and --smtp-tls-key go together")
	}
	ln, err := net.Listen("tcp", o.SMTPAddr)
	if err != nil {
		return nil, nil, fmt.Errorf("--smtp-addr: listen on %s: %w", o.SMTPAddr, err)
	}
	return email.NewSMTPServer(cfg), ln, nil
}

// serveDebug serves pprof on its own listener, never on the public one.
func serveDebug(addr string, log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	log.Info("debug listener (pprof)", "addr", addr)
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if err := srv.ListenAndServe(); err != nil {
		log.Error("debug listener", "err", err)
	}
}

func routingName(redisURL string) string {
	if redisURL != "" {
		return "redis"
	}
	return "in-process"
}

func displayAddr(a string) string {
	if strings.HasPrefix(a, "[::]") || strings.HasPrefix(a, "0.0.0.0") {
		_, port, _ := net.SplitHostPort(a)
		return "localhost:" + port
	}
	return a
}

// readyz reports whether the node can serve: database and Redis answer.
func readyz(st *store.Store, rdb *redis.Client) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		checks := map[string]string{"database": "ok"}
		ok := true
		if err := st.Ping(ctx); err != nil {
			checks["database"], ok = err.Error(), false
		}
		if rdb != nil {
			checks["redis"] = "ok"
			if err := rdb.Ping(ctx).Err(); err != nil {
				checks["redis"], ok = err.Error(), false
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if !ok {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": ok, "checks": checks})
	}
}

// fileToken reads a token from path, creating it (mode 0600) on first use.
func fileToken(path, prefix string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	tok, _ := hub.NewToken(prefix)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}
