package store

import (
	"context"
	"fmt"
	"time"

	"github.com/uptrace/bun"
)

// ClaimOutbox leases up to limit due items for lease, so that one node
// sends each item at a time; a node that dies loses its lease and another
// node takes the item over after it runs out.
func (s *Store) ClaimOutbox(ctx context.Context, limit int, lease time.Duration) ([]*OutboxItem, error) {
	now := s.now()
	var items []*OutboxItem
	err := s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
		q := tx.NewSelect().Model(&items).
			Where("state = ? AND next_attempt_at <= ?", OutboxPending, now).
			WhereGroup(" AND ", func(q *bun.SelectQuery) *bun.SelectQuery {
				return q.Where("locked_until IS NULL").WhereOr("locked_until < ?", now)
			}).
			Order("next_attempt_at", "id").Limit(int64(limit))
		if s.pg {
			q = q.For("UPDATE SKIP LOCKED")
		}
		if err := q.Scan(ctx); err != nil {
			return err
		}
		until := now.Add(lease)
		for _, it := range items {
			it.LockedUntil = &until
			if _, err := tx.NewUpdate().Model(it).Column("locked_until").WherePK().Exec(ctx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("claim outbox: %w", err)
	}
	return items, nil
}

// OutboxResult is the outcome of one send attempt.
type OutboxResult struct {
	Sent       bool
	ExternalID string
	State      string // delivery state after a successful send
	// ViaChannelID is the channel the message left through when it is not
	// the message's own (web-form replies leave by email). The message is
	// then recorded on that channel, where its provider id belongs: a
	// bounce or an answer to it finds it there.
	ViaChannelID string
	// Retry at RetryAt; otherwise (not Sent) the item is dead.
	Retry   bool
	RetryAt time.Time
	// Waiting keeps the item pending without counting an attempt (e.g. no
	// channel can carry it yet).
	Waiting bool
	Error   string
}

// FinishOutbox records an attempt's outcome on the item and its message in
// one transaction and returns the updated message.
func (s *Store) FinishOutbox(ctx context.Context, it *OutboxItem, r OutboxResult) (*Message, error) {
	m := new(Message)
	err := s.writeTx(ctx, func(ctx context.Context, tx *txn) error {
		if err := tx.NewSelect().Model(m).Where("m.id = ?", it.MessageID).Scan(ctx); err != nil {
			return err
		}
		now := s.now()
		it.UpdatedAt, it.LockedUntil, it.LastError = now, nil, r.Error
		switch {
		case r.Sent:
			it.State = OutboxSent
			it.Attempts++
			m.ExternalID = r.ExternalID
			if r.ViaChannelID != "" {
				m.ChannelID = r.ViaChannelID
			}
			if advances(m.State, r.State) {
				m.State = r.State
			}
			m.StateReason = ""
		case r.Waiting:
			it.NextAttemptAt = r.RetryAt
			m.StateReason = r.Error
		case r.Retry:
			it.Attempts++
			it.NextAttemptAt = r.RetryAt
			m.StateReason = fmt.Sprintf("attempt %d failed, retrying: %s", it.Attempts, r.Error)
		default:
			it.Attempts++
			it.State = OutboxDead
			m.State, m.StateReason = "failed", r.Error
		}
		if _, err := tx.NewUpdate().Model(it).Column("state", "attempts", "next_attempt_at", "locked_until", "last_error", "updated_at").WherePK().Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.NewUpdate().Model(m).Column("channel_id", "external_id", "state", "state_reason").WherePK().Exec(ctx); err != nil {
			return err
		}
		return s.addChange(ctx, tx, &Ticket{ID: m.TicketID, InstanceID: m.InstanceID}, ChangeState, m)
	})
	return m, err
}

// WakeWaiting makes the instance's outbox items that wait for a channel to
// carry them due now: a channel that may carry them has started, and
// their "waiting" reason should not outlive it.
func (s *Store) WakeWaiting(ctx context.Context, instanceID string) error {
	_, err := s.DB.NewUpdate().Model((*OutboxItem)(nil)).Set("next_attempt_at = ?", s.now()).
		Where("instance_id = ? AND state = ? AND last_error LIKE ?", instanceID, OutboxPending, "waiting:%").Exec(ctx)
	if err != nil {
		return fmt.Errorf("wake waiting outbox items: %w", err)
	}
	return nil
}

// OutboxItems lists an instance's outbox items in a state (operators and
// tests).
func (s *Store) OutboxItems(ctx context.Context, instanceID, state string) ([]*OutboxItem, error) {
	var out []*OutboxItem
	q := s.DB.NewSelect().Model(&out).Where("instance_id = ?", instanceID)
	if state != "" {
		q = q.Where("state = ?", state)
	}
	return out, q.Order("id").Scan(ctx)
}

// RetryOutbox puts a dead item back in the queue (an agent's "retry").
func (s *Store) RetryOutbox(ctx context.Context, instanceID string, messageID int64) error {
	res, err := s.DB.NewUpdate().Model((*OutboxItem)(nil)).
		Set("state = ?", OutboxPending).Set("next_attempt_at = ?", s.now()).Set("attempts = 0").
		Where("instance_id = ? AND message_id = ? AND state = ?", instanceID, messageID, OutboxDead).Exec(ctx)
	return affected(res, err, fmt.Sprintf("failed message %d", messageID))
}
