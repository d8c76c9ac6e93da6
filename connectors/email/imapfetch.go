package email

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/switchboard-hub/switchboard/connectors"
)

// The fetch loop of a session: list the UIDs above the cursor with their
// sizes, fetch their bodies in bounded batches (BODY.PEEK[], so fetching
// never sets \Seen), hand them to Ingest (concurrently, except where a mail
// answers an earlier one of its batch), acknowledge the stored ones,
// advance the cursor past the done prefix.

// imapSaveTimeout bounds the acknowledgement and cursor save that finish a
// batch after ctx ended (what was stored is still acknowledged).
const imapSaveTimeout = 10 * time.Second

// imapMeta is what the listing tells of one message: a few bytes each, so
// listing a mailbox of 10,000 mails holds no mail in memory.
type imapMeta struct {
	uid  imap.UID
	size int64
	seen bool
}

// imapFetched is one fetched message.
type imapFetched struct {
	uid          imap.UID
	size         int64
	internalDate time.Time
	raw          []byte
	hasBody      bool // the server sent the section (not NIL)
	truncated    bool // the section was longer than we accept
}

// syncRound reads everything above the cursor. failed reports that Ingest
// refused a message, which stays unacknowledged for a later round; err is
// a broken session.
func (s *imapSession) syncRound(ctx context.Context) (failed bool, err error) {
	nothingNew := s.cursor.UID == math.MaxUint32
	if mb := s.c.Mailbox(); mb != nil && mb.NumMessages == 0 {
		nothingNew = true
	}
	if next := s.uidNext; next != 0 {
		// UIDNEXT from SELECT says whether anything arrived since the
		// cursor without asking the server; it is only fresh once.
		s.uidNext = 0
		if uint64(s.cursor.UID)+1 >= uint64(next) {
			nothingNew = true
		}
	}
	if !nothingNew {
		metas, err := s.fetchMeta(imap.UID(s.cursor.UID + 1))
		if err != nil {
			return false, err
		}
		cfg := s.m.w.cfg
		for len(metas) > 0 {
			n := imapBatchLen(metas, cfg.BatchSize, cfg.BatchBytes, cfg.MaxMessageBytes)
			ok, err := s.processBatch(ctx, metas[:n])
			if err != nil {
				return false, err
			}
			if !ok {
				return true, nil
			}
			metas = metas[n:]
		}
	}
	if s.firstSync {
		// Record the new UIDVALIDITY even when nothing was read, so the
		// next session does not take the mailbox for re-created again.
		if err := s.saveCursor(ctx, s.cursor); err != nil {
			return false, err
		}
		s.firstSync = false
	}
	return false, nil
}

// imapBatchLen is how many of metas make the next batch: at most count
// messages, and bodies of at most budget bytes, but at least one message.
// Oversize messages cost only their header.
func imapBatchLen(metas []imapMeta, count int, budget, maxMessage int64) int {
	var sum int64
	for i, m := range metas {
		if i == count {
			return i
		}
		if m.size <= maxMessage {
			sum += m.size
		}
		if i > 0 && sum > budget {
			return i
		}
	}
	return len(metas)
}

// fetchMeta lists the messages with a UID of at least from, in UID order.
func (s *imapSession) fetchMeta(from imap.UID) ([]imapMeta, error) {
	var set imap.UIDSet
	set.AddRange(from, 0) // from:*
	cmd := s.c.Fetch(set, &imap.FetchOptions{UID: true, Flags: true, RFC822Size: true})
	var metas []imapMeta
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		buf, err := msg.Collect()
		if err != nil {
			cmd.Close()
			return nil, fmt.Errorf("list messages: %w", err)
		}
		// "n:*" also matches the highest UID when that is below n.
		if buf.UID < from {
			continue
		}
		metas = append(metas, imapMeta{uid: buf.UID, size: buf.RFC822Size, seen: slices.ContainsFunc(buf.Flags, imapIsSeen)})
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("list messages from UID %d: %w", from, err)
	}
	slices.SortFunc(metas, func(a, b imapMeta) int { return cmp.Compare(a.uid, b.uid) })
	metas = slices.CompactFunc(metas, func(a, b imapMeta) bool { return a.uid == b.uid })
	return metas, nil
}

func imapIsSeen(f imap.Flag) bool { return strings.EqualFold(string(f), string(imap.FlagSeen)) }

// fetchBodies fetches the whole message (or only its header) of uids into
// got, reading at most limit bytes of each.
func (s *imapSession) fetchBodies(uids imap.UIDSet, headerOnly bool, limit int64, got map[imap.UID]*imapFetched) error {
	section := &imap.FetchItemBodySection{Peek: true}
	if headerOnly {
		section.Specifier = imap.PartSpecifierHeader
	}
	cmd := s.c.Fetch(uids, &imap.FetchOptions{
		UID:          true,
		InternalDate: true,
		RFC822Size:   true,
		BodySection:  []*imap.FetchItemBodySection{section},
	})
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		f := &imapFetched{}
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				f.uid = it.UID
			case imapclient.FetchItemDataInternalDate:
				f.internalDate = it.Time
			case imapclient.FetchItemDataRFC822Size:
				f.size = it.Size
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil {
					continue
				}
				b, err := io.ReadAll(io.LimitReader(it.Literal, limit+1))
				if err != nil {
					cmd.Close()
					return fmt.Errorf("read message: %w", err)
				}
				f.hasBody = true
				if int64(len(b)) > limit {
					f.truncated = true
					b = nil
				}
				f.raw = b
			}
		}
		if f.uid != 0 {
			got[f.uid] = f
		}
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("fetch messages %s: %w", uids, err)
	}
	return nil
}

// processBatch fetches, ingests, acknowledges and passes the cursor over
// one batch. ok is false when Ingest refused a message: the cursor stays
// before it (so the next round reads it again), while the messages after
// it are still stored and acknowledged — one bad message does not hold up
// the mail behind it.
func (s *imapSession) processBatch(ctx context.Context, batch []imapMeta) (ok bool, err error) {
	cfg := s.m.w.cfg
	skipSeen := s.firstSync && cfg.Settings.InitialSync == InitialSyncUnseen
	var whole, headers imap.UIDSet
	for _, m := range batch {
		switch {
		case skipSeen && m.seen:
		case m.size > cfg.MaxMessageBytes:
			headers.AddNum(m.uid)
		default:
			whole.AddNum(m.uid)
		}
	}
	got := make(map[imap.UID]*imapFetched, len(batch))
	if len(whole) > 0 {
		if err := s.fetchBodies(whole, false, cfg.MaxMessageBytes, got); err != nil {
			return false, err
		}
	}
	if len(headers) > 0 {
		if err := s.fetchBodies(headers, true, imapMaxHeaderBytes, got); err != nil {
			return false, err
		}
	}

	results := s.ingestAll(ctx, batch, got, skipSeen)

	// A message is done when it needs nothing more: stored, or not ours to
	// store, or given up on. The cursor passes the done prefix only.
	done := make([]bool, len(batch))
	var stored imap.UIDSet
	var unproven []imapFailure
	ok = true
	for i, m := range batch {
		r := results[i]
		if r.skip {
			// initial_sync "unseen": read before, not ours to take; or
			// expunged since the listing: nothing to store.
			done[i] = true
			continue
		}
		err := r.err
		if err == nil {
			s.m.log.Debug("IMAP message stored", "uid", m.uid, "bytes", r.bytes)
			done[i] = true
			stored.AddNum(m.uid)
			delete(s.m.attempts, m.uid)
			// The hub stored this one, so the failures before it were the
			// messages' own: they count towards MaxAttempts.
			s.countFailures(unproven, done)
			unproven = nil
			continue
		}
		ok = false
		if ctx.Err() != nil {
			break
		}
		fail := imapFailure{i: i, uid: m.uid, err: err}
		if r.ownFault || connectors.ClassOf(err) == connectors.Permanent {
			s.countFailures([]imapFailure{fail}, done)
		} else {
			unproven = append(unproven, fail)
		}
	}
	for _, f := range unproven {
		// Nothing after it was stored either: the hub may be down, which
		// is no fault of the message. Try again later without counting.
		s.m.log.Warn("IMAP message not stored; it stays unacknowledged and is tried again",
			"uid", f.uid, "err", f.err)
	}
	last := s.cursor.UID
	for i, d := range done {
		if !d {
			break
		}
		last = uint32(batch[i].uid)
	}
	// Failures given up on leave nothing to retry.
	ok = ok || !slices.Contains(done, false)

	// What was stored is acknowledged even when ctx just ended.
	if s.ack && len(stored) > 0 {
		if err := s.acknowledge(stored); err != nil {
			return false, err
		}
	}
	if last != s.cursor.UID {
		if err := s.saveCursor(ctx, Cursor{UIDValidity: s.uidValidity, UID: last}); err != nil {
			return false, err
		}
	}
	if ctx.Err() != nil {
		return false, ctx.Err()
	}
	return ok, nil
}

// imapResult is what became of one message of a batch.
type imapResult struct {
	skip     bool // nothing to store: not ours to take, or expunged
	err      error
	ownFault bool // the message itself could not be prepared
	bytes    int
}

// ingestAll hands a fetched batch to Ingest. Mails are independent unless
// one answers another of the same batch, so they are ingested
// concurrently (parsing is CPU work, and the hub commits concurrent
// deliveries together), except that a mail whose In-Reply-To or References
// names an earlier mail of the batch (or that repeats its Message-ID)
// waits until that one is done: threading sees the mails in UID order.
// Results are in batch order, for the bookkeeping that follows.
func (s *imapSession) ingestAll(ctx context.Context, batch []imapMeta, got map[imap.UID]*imapFetched, skipSeen bool) []imapResult {
	res := make([]imapResult, len(batch))
	finished := make([]chan struct{}, len(batch))
	byID := map[string]int{}
	sem := make(chan struct{}, s.m.w.cfg.Parallel)
	var wg sync.WaitGroup
	for i, m := range batch {
		finished[i] = make(chan struct{})
		f := got[m.uid]
		if (skipSeen && m.seen) || f == nil {
			res[i].skip = true
			close(finished[i])
			continue
		}
		raw, src, err := s.prepare(f, m)
		if err != nil {
			res[i] = imapResult{err: err, ownFault: true}
			close(finished[i])
			continue
		}
		id, refs := imapThreadIDs(raw)
		var deps []chan struct{}
		for _, r := range append(refs, id) {
			if j, ok := byID[r]; ok && r != "" {
				deps = append(deps, finished[j])
			}
		}
		if id != "" {
			byID[id] = i
		}
		// Taken in UID order, so that with Parallel 1 the mails go one by
		// one in UID order; a mail holding a slot waits only for earlier
		// mails, which hold theirs already: no deadlock.
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			res[i].err = ctx.Err()
			close(finished[i])
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(finished[i])
			defer func() { <-sem }()
			for _, d := range deps {
				<-d
			}
			res[i].err = s.ingest(ctx, raw, src)
			res[i].bytes = len(raw)
		}()
	}
	wg.Wait()
	return res
}

// imapThreadIDs reads a mail's own Message-ID and the ids its
// In-Reply-To and References name, from its header alone; a header it
// cannot read names nothing (the mail then waits for nobody, and the hub
// still threads it by what Parse reads).
func imapThreadIDs(raw []byte) (id string, refs []string) {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		end = bytes.Index(raw, []byte("\n\n"))
	}
	if end < 0 {
		end = len(raw)
	}
	h, _ := textproto.NewReader(bufio.NewReader(bytes.NewReader(append(raw[:end:end], "\r\n\r\n"...)))).ReadMIMEHeader()
	ids := func(v string) []string {
		var out []string
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == '<' || r == '>' || r == ' ' || r == '\t' || r == ',' }) {
			if strings.Contains(f, "@") {
				out = append(out, f)
			}
		}
		return out
	}
	if v := ids(h.Get("Message-Id")); len(v) > 0 {
		id = v[0]
	}
	refs = append(ids(h.Get("In-Reply-To")), ids(h.Get("References"))...)
	return id, refs
}

// saveCursor stores c (also just after ctx ended: what was acknowledged
// should not be read again) and makes it the session's cursor.
func (s *imapSession) saveCursor(ctx context.Context, c Cursor) error {
	if s.save {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), imapSaveTimeout)
		defer cancel()
		if err := s.m.w.cfg.Cursors.SaveCursor(sctx, s.m.name, c); err != nil {
			return fmt.Errorf("save cursor: %w", err)
		}
	}
	s.cursor = c
	return nil
}

// imapFailure is a message Ingest refused, at index i of its batch.
type imapFailure struct {
	i   int
	uid imap.UID
	err error
}

// countFailures counts one attempt against each failed message and gives
// up on those that reached MaxAttempts: they are marked done (the cursor
// passes them) but stay unacknowledged on the server, unread or unmoved,
// where a person sees them. So one message the hub can never store does
// not hold the cursor forever.
func (s *imapSession) countFailures(fails []imapFailure, done []bool) {
	maxAttempts := s.m.w.cfg.MaxAttempts
	for _, f := range fails {
		s.m.attempts[f.uid]++
		n := s.m.attempts[f.uid]
		if n < maxAttempts {
			s.m.log.Warn("IMAP message not stored; it stays unacknowledged and is tried again",
				"uid", f.uid, "attempt", n, "max_attempts", maxAttempts, "err", f.err)
			continue
		}
		s.m.log.Error("IMAP message could not be stored after repeated attempts; skipping it and leaving it unacknowledged in the mailbox",
			"uid", f.uid, "uidvalidity", s.uidValidity, "attempts", n, "err", f.err)
		delete(s.m.attempts, f.uid)
		done[f.i] = true
	}
}

// prepare turns a fetched message into what Ingest gets.
func (s *imapSession) prepare(f *imapFetched, m imapMeta) ([]byte, Source, error) {
	cfg := s.m.w.cfg
	src := Source{
		Via:          "imap",
		Mailbox:      s.m.name,
		UID:          uint32(m.uid),
		UIDValidity:  s.uidValidity,
		InternalDate: f.internalDate,
	}
	size := f.size
	if size == 0 {
		size = m.size
	}
	switch {
	case !f.hasBody:
		return nil, src, fmt.Errorf("UID %d: the server sent no message body", m.uid)
	case m.size > cfg.MaxMessageBytes:
		if f.truncated {
			return nil, src, fmt.Errorf("UID %d: header longer than %d bytes", m.uid, imapMaxHeaderBytes)
		}
		src.Oversize = size
		s.m.log.Warn("IMAP message larger than the limit; storing its header with a note",
			"uid", m.uid, "size", size, "limit", cfg.MaxMessageBytes)
		return imapOversizeStub(f.raw, size, cfg.MaxMessageBytes, s.m.name, uint32(m.uid)), src, nil
	case f.truncated:
		return nil, src, fmt.Errorf("UID %d: the server sent more than the %d bytes it announced (limit %d)", m.uid, m.size, cfg.MaxMessageBytes)
	}
	return f.raw, src, nil
}

// acknowledge marks stored messages as the settings say: \Seen, or a move
// to the processed mailbox (COPY + \Deleted + UID EXPUNGE where the server
// has no MOVE). A refusal by the server (NO) is logged and not retried:
// the messages are stored, and reading them again would not help. A broken
// connection is returned, so that the cursor stays put and the messages
// are read again after the reconnect (dedup absorbs them).
func (s *imapSession) acknowledge(uids imap.UIDSet) error {
	st := s.m.w.cfg.Settings
	var err error
	if st.AfterFetch == "move" {
		err = s.move(uids, st.ProcessedMailbox)
	} else {
		err = s.c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close()
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		s.m.log.Error("IMAP server refused to acknowledge stored messages; they stay as they are in the mailbox",
			"uids", uids.String(), "after_fetch", st.AfterFetch, "err", err)
		return nil
	}
	if err != nil {
		return fmt.Errorf("acknowledge %s: %w", uids, err)
	}
	return nil
}

func (s *imapSession) move(uids imap.UIDSet, dest string) error {
	err := s.moveOnce(uids, dest)
	var ie *imap.Error
	if errors.As(err, &ie) && ie.Code == imap.ResponseCodeTryCreate {
		s.m.log.Info("IMAP processed mailbox missing; creating it", "processed_mailbox", dest)
		if cerr := s.c.Create(dest, nil).Wait(); cerr != nil {
			return fmt.Errorf("create %q: %w", dest, cerr)
		}
		err = s.moveOnce(uids, dest)
	}
	return err
}

func (s *imapSession) moveOnce(uids imap.UIDSet, dest string) error {
	caps := s.c.Caps()
	if caps.Has(imap.CapMove) {
		_, err := s.c.Move(uids, dest).Wait()
		return err
	}
	if _, err := s.c.Copy(uids, dest).Wait(); err != nil {
		return err
	}
	if err := s.c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		return err
	}
	if !caps.Has(imap.CapUIDPlus) {
		// A plain EXPUNGE would also remove messages someone else marked
		// \Deleted; leave ours marked instead (the cursor is past them).
		s.m.log.Warn("IMAP server has neither MOVE nor UIDPLUS; moved messages stay in the mailbox marked \\Deleted", "uids", uids.String())
		return nil
	}
	return s.c.UIDExpunge(uids).Close()
}

// imapOversizeStub is what is stored for a message over the size limit:
// its header as received, with the top-level content fields renamed to
// X-Switchboard-Original-* (so the note below is read as the body), and a
// plain-text note saying where the full message is.
func imapOversizeStub(header []byte, size, limit int64, mailbox string, uid uint32) []byte {
	eol := "\n"
	if i := bytes.IndexByte(header, '\n'); i > 0 && header[i-1] == '\r' {
		eol = "\r\n"
	}
	var out bytes.Buffer
	out.Grow(len(header) + 512)
	rename := false
	for line := range bytes.Lines(header) {
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			break // end of the header
		}
		if content[0] != ' ' && content[0] != '\t' {
			name, _, found := bytes.Cut(content, []byte(":"))
			rename = found && imapIsContentField(string(bytes.TrimRight(name, " \t")))
			if rename {
				out.WriteString("X-Switchboard-Original-")
			}
		}
		out.Write(content)
		out.WriteString(eol)
	}
	for _, f := range []string{
		"Content-Type: text/plain; charset=utf-8",
		"Content-Transfer-Encoding: 8bit",
		"X-Switchboard-Oversize: " + strconv.FormatInt(size, 10),
	} {
		out.WriteString(f + eol)
	}
	out.WriteString(eol)
	fmt.Fprintf(&out, "This message is %d bytes, more than this channel's limit of %d bytes, so only its header was fetched.%s"+
		"The full message is still on the mail server, in the mailbox %q (UID %d).%s",
		size, limit, eol, mailbox, uid, eol)
	return out.Bytes()
}

func imapIsContentField(name string) bool {
	for _, f := range []string{"Content-Type", "Content-Transfer-Encoding", "Content-Disposition"} {
		if strings.EqualFold(name, f) {
			return true
		}
	}
	return false
}

// imapFetchStats is what fetchOnly read.
type imapFetchStats struct {
	Messages int
	Bytes    int64
}

// fetchOnly runs the watcher's fetch loop once over mailbox from its
// first message and discards what it reads: no Ingest, no
// acknowledgement, no cursor. The throughput benchmark prints it beside
// the full path as the limit the IMAP side sets.
func (w *imapWatcher) fetchOnly(ctx context.Context, mailbox string) (imapFetchStats, error) {
	m := &imapMailbox{w: w, name: mailbox, log: w.log.With("mailbox", mailbox), attempts: map[imap.UID]int{}}
	s, err := m.open(ctx)
	if err != nil {
		return imapFetchStats{}, err
	}
	defer s.close()
	var messages, bytes atomic.Int64 // Ingest runs concurrently
	s.ingest = func(_ context.Context, raw []byte, _ Source) error {
		messages.Add(1)
		bytes.Add(int64(len(raw)))
		return nil
	}
	s.setCursor(Cursor{})
	_, err = s.syncRound(ctx)
	return imapFetchStats{Messages: int(messages.Load()), Bytes: bytes.Load()}, err
}
