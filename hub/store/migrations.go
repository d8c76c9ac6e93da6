package store

import (
	"context"
	"fmt"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect"
	"github.com/uptrace/bun/migrate"
)

// migrations is the ordered schema history. Append; never edit a
// migration that has shipped.
//
// The first migration creates the tables from the current models, so on a
// new database it already has every column later migrations add. Later
// migrations are therefore written to be no-ops where their change is
// already there (addColumn, IfNotExists), and do real work only on a
// database created by an older version.
func migrations() *migrate.Migrations {
	m := migrate.NewMigrations()
	add(m, "20261203000001", "initial", upInitial, downInitial)
	add(m, "20261203000002", "email: quoted history, channel state", upEmail, downEmail)
	add(m, "20261204000003", "write path: HOT ticket updates, one index fewer per message", upWritePath, downWritePath)
	return m
}

func add(m *migrate.Migrations, name, comment string, up, down migrate.MigrationFunc) {
	m.Add(migrate.Migration{
		Name:    name,
		Comment: comment,
		Up:      func(ctx context.Context, mg *migrate.Migrator, _ *migrate.Migration) error { return up(ctx, mg.DB()) },
		Down:    func(ctx context.Context, mg *migrate.Migrator, _ *migrate.Migration) error { return down(ctx, mg.DB()) },
	})
}

// initialModels are created by the first migration, in dependency order.
var initialModels = []any{
	(*Instance)(nil), (*Channel)(nil), (*Contact)(nil), (*Identity)(nil),
	(*Team)(nil), (*Agent)(nil), (*AgentTeam)(nil), (*APIKey)(nil),
	(*Ticket)(nil), (*Message)(nil), (*Attachment)(nil), (*OutboxItem)(nil),
	(*Change)(nil),
}

var initialIndexes = []string{
	// One open conversation per thread key (live chat: two tabs racing to
	// start a session get the same ticket; case C23).
	`CREATE UNIQUE INDEX tickets_open_thread ON tickets (channel_id, thread_key) WHERE thread_key <> '' AND status <> 'closed'`,
	`CREATE INDEX tickets_instance_status ON tickets (instance_id, status, last_message_at)`,
	`CREATE INDEX tickets_assignee ON tickets (instance_id, assignee_id)`,
	// Nothing stored twice: inbound dedup on (channel, external id),
	// outbound on (channel, idempotency key).
	`CREATE UNIQUE INDEX messages_dedup ON messages (channel_id, dedup_key)`,
	`CREATE INDEX messages_ticket ON messages (ticket_id, id)`,
	`CREATE INDEX messages_external ON messages (channel_id, external_id)`,
	`CREATE INDEX attachments_message ON attachments (message_id)`,
	`CREATE INDEX outbox_due ON outbox (state, next_attempt_at)`,
	`CREATE INDEX identities_contact ON contact_identities (contact_id)`,
	`CREATE INDEX channels_instance ON channels (instance_id)`,
}

func upInitial(ctx context.Context, db *bun.DB) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, m := range initialModels {
			if _, err := tx.NewCreateTable().Model(m).Exec(ctx); err != nil {
				return fmt.Errorf("create table for %T: %w", m, err)
			}
		}
		for _, q := range initialIndexes {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
}

func downInitial(ctx context.Context, db *bun.DB) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for i := len(initialModels) - 1; i >= 0; i-- {
			if _, err := tx.NewDropTable().Model(initialModels[i]).IfExists().Exec(ctx); err != nil {
				return fmt.Errorf("drop table for %T: %w", initialModels[i], err)
			}
		}
		return nil
	})
}

// migrationLockKey is the Postgres advisory lock that serializes
// migrations between nodes starting at once.
const migrationLockKey = 7_461_238_001

// Migrate brings the schema up to date. Safe to run on every start and
// from several nodes at once: on Postgres an advisory lock (released by the
// server if the process dies, unlike a lock row) serializes them.
func (s *Store) Migrate(ctx context.Context) error {
	if s.pg {
		conn, err := s.DB.Conn(ctx)
		if err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(ctx, "SELECT pg_advisory_lock(?)", migrationLockKey); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		defer conn.ExecContext(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(?)", migrationLockKey) //nolint:errcheck
	}
	mg := migrate.NewMigrator(s.DB, migrations())
	if err := mg.Init(ctx); err != nil {
		return fmt.Errorf("init migrations: %w", err)
	}
	if _, err := mg.Migrate(ctx); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}

// Rollback undoes the last migration group (tests and operators).
func (s *Store) Rollback(ctx context.Context) error {
	mg := migrate.NewMigrator(s.DB, migrations())
	if err := mg.Init(ctx); err != nil {
		return fmt.Errorf("init migrations: %w", err)
	}
	if _, err := mg.Rollback(ctx); err != nil {
		return fmt.Errorf("rollback: %w", err)
	}
	return nil
}

// MigrationStatus lists applied and pending migrations.
func (s *Store) MigrationStatus(ctx context.Context) (applied, pending []string, err error) {
	mg := migrate.NewMigrator(s.DB, migrations())
	if err := mg.Init(ctx); err != nil {
		return nil, nil, fmt.Errorf("init migrations: %w", err)
	}
	ms, err := mg.MigrationsWithStatus(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, m := range ms {
		if m.IsApplied() {
			applied = append(applied, m.Name)
		} else {
			pending = append(pending, m.Name)
		}
	}
	return applied, pending, nil
}

// upEmail adds what the email channel needs: the quoted history of a
// reply kept beside its new text, and a small key-value state per channel
// (IMAP cursors).
func upEmail(ctx context.Context, db *bun.DB) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		for _, col := range []string{"quoted", "quoted_html"} {
			if err := addColumn(ctx, tx, "messages", col, "TEXT NOT NULL DEFAULT ''"); err != nil {
				return err
			}
		}
		if _, err := tx.NewCreateTable().Model((*ChannelState)(nil)).IfNotExists().Exec(ctx); err != nil {
			return fmt.Errorf("create table channel_state: %w", err)
		}
		// Mail threads by Message-ID across the instance's channels.
		q := `CREATE INDEX IF NOT EXISTS messages_instance_external ON messages (instance_id, external_id)`
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
		return nil
	})
}

func downEmail(ctx context.Context, db *bun.DB) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		if _, err := tx.NewDropTable().Model((*ChannelState)(nil)).IfExists().Exec(ctx); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DROP INDEX IF EXISTS messages_instance_external`); err != nil {
			return err
		}
		for _, q := range []string{
			`ALTER TABLE messages DROP COLUMN quoted`,
			`ALTER TABLE messages DROP COLUMN quoted_html`,
		} {
			if _, err := tx.ExecContext(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	})
}

// addColumn adds a column unless the table has it already (see migrations).
func addColumn(ctx context.Context, tx bun.Tx, table, column, decl string) error {
	var n int
	var err error
	if tx.Dialect().Name() == dialect.PG {
		err = tx.NewRaw("SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ? AND column_name = ?", table, column).Scan(ctx, &n)
	} else {
		err = tx.NewRaw("SELECT count(*) FROM pragma_table_info(?) WHERE name = ?", table, column).Scan(ctx, &n)
	}
	if err != nil {
		return fmt.Errorf("look up column %s.%s: %w", table, column, err)
	}
	if n > 0 {
		return nil
	}
	q := fmt.Sprintf("ALTER TABLE %s ADD COLUMN %s %s", table, column, decl)
	if _, err := tx.ExecContext(ctx, q); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

// upWritePath makes the per-message writes cheaper (docs/decisions.md,
// D13). Every inbound message updates its ticket's last_message_at; with
// that column in an index, each update is a new tuple in every index of
// tickets. Without it (and with room left on each page) Postgres updates
// the row in place (a HOT update) and touches no index. Ticket lists sort
// by last activity at read time, as they already did for every list that
// is not of a single status. messages_external duplicated
// messages_instance_external for every lookup the store makes (each one
// names the instance).
func upWritePath(ctx context.Context, db *bun.DB) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		qs := []string{
			`DROP INDEX IF EXISTS tickets_instance_status`,
			`CREATE INDEX IF NOT EXISTS tickets_instance_state ON tickets (instance_id, status)`,
			`DROP INDEX IF EXISTS messages_external`,
		}
		if tx.Dialect().Name() == dialect.PG {
			qs = append(qs, `ALTER TABLE tickets SET (fillfactor = 70)`)
		}
		return execAll(ctx, tx, qs)
	})
}

func downWritePath(ctx context.Context, db *bun.DB) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		qs := []string{
			`DROP INDEX IF EXISTS tickets_instance_state`,
			`CREATE INDEX IF NOT EXISTS tickets_instance_status ON tickets (instance_id, status, last_message_at)`,
			`CREATE INDEX IF NOT EXISTS messages_external ON messages (channel_id, external_id)`,
		}
		if tx.Dialect().Name() == dialect.PG {
			qs = append(qs, `ALTER TABLE tickets RESET (fillfactor)`)
		}
		return execAll(ctx, tx, qs)
	})
}

// execAll runs statements in order, naming the one that fails.
func execAll(ctx context.Context, tx bun.Tx, qs []string) error {
	for _, q := range qs {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}
