"""SQLite schema. Additive changes only: append a migration (its number is its position)."""

from __future__ import annotations

# 6: waiting rows written before `runs.waits.correlation_key` hold Python's str() of the
# run's value ("4711.0" for the number 4711, "True"); rewrite them to that function's text so
# runs already waiting resume after an upgrade. The value's JSON type is read back from the
# run's plan (the wait's `key` path under `base`); only plain dotted paths are followed, as
# a `[` or quote would not be a valid JSON path. This SQL mirrors `correlation_key`.
_WAIT_VALUE_PATH = """(CASE WHEN json_extract(r.plan, '$.steps[' || w.step_index || '].wait.key')
    NOT GLOB '*[^A-Za-z0-9_.-]*'
    THEN '$.base.' || json_extract(r.plan, '$.steps[' || w.step_index || '].wait.key') END)"""
REKEY_WAITS = f"""
    CREATE TEMP TABLE rekeyed_waits AS
        SELECT w.run_id, w.step_index,
               json_type(r.plan, {_WAIT_VALUE_PATH}) AS kind,
               json_extract(r.plan, {_WAIT_VALUE_PATH}) AS value
        FROM waits AS w JOIN runs AS r ON r.id = w.run_id;
    DELETE FROM waits WHERE (run_id, step_index) IN (
        SELECT run_id, step_index FROM rekeyed_waits
        WHERE kind IN ('object', 'array')
           OR (kind IN ('integer', 'real') AND abs(value) >= 9007199254740992));
    UPDATE waits SET key = (
        SELECT CASE
            WHEN t.kind IN ('true', 'false') THEN t.kind
            WHEN t.kind IN ('integer', 'real') AND t.value = CAST(t.value AS INTEGER)
                THEN CAST(CAST(t.value AS INTEGER) AS TEXT)
            ELSE waits.key END
        FROM rekeyed_waits AS t
        WHERE t.run_id = waits.run_id AND t.step_index = waits.step_index)
    WHERE (run_id, step_index) IN (SELECT run_id, step_index FROM rekeyed_waits);
    DROP TABLE rekeyed_waits;
"""

MIGRATIONS: list[str] = [
    """
    CREATE TABLE contacts (
        id          TEXT PRIMARY KEY,
        email       TEXT NOT NULL UNIQUE,
        updated_us  INTEGER NOT NULL,
        data        BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX contacts_updated ON contacts (updated_us, id);
    CREATE TABLE contact_lists (
        list        TEXT NOT NULL,
        contact_id  TEXT NOT NULL,
        PRIMARY KEY (list, contact_id)
    ) WITHOUT ROWID;
    CREATE INDEX contact_lists_contact ON contact_lists (contact_id);
    -- Erased contacts: no personal data, only a hash of the email so a later sync of the
    -- same address is recognised and refused.
    CREATE TABLE tombstones (
        contact_id  TEXT PRIMARY KEY,
        email_hash  TEXT NOT NULL UNIQUE,
        deleted_us  INTEGER NOT NULL
    ) WITHOUT ROWID;
    -- Append-only log: every accepted write is also an event.
    CREATE TABLE events (
        seq           INTEGER PRIMARY KEY AUTOINCREMENT,
        type          TEXT NOT NULL,
        aggregate_id  TEXT NOT NULL,
        at_us         INTEGER NOT NULL,
        payload       BLOB NOT NULL
    );
    CREATE INDEX events_aggregate ON events (aggregate_id, seq);
    CREATE TRIGGER events_append_only_update BEFORE UPDATE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TRIGGER events_append_only_delete BEFORE DELETE ON events
        BEGIN SELECT RAISE(ABORT, 'events are append-only'); END;
    CREATE TABLE idempotency (
        key           TEXT PRIMARY KEY,
        method        TEXT NOT NULL,
        request_hash  TEXT NOT NULL,
        response      BLOB NOT NULL,
        at_us         INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX idempotency_age ON idempotency (at_us);
    CREATE TABLE leads (
        contact_id  TEXT PRIMARY KEY,
        data        BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE activities (
        id           TEXT PRIMARY KEY,
        contact_id   TEXT NOT NULL,
        type         TEXT NOT NULL,
        occurred_us  INTEGER NOT NULL,
        value        REAL NOT NULL,
        attributes   BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX activities_contact ON activities (contact_id, occurred_us);
    CREATE TABLE runs (
        id          TEXT PRIMARY KEY,
        event       TEXT NOT NULL,
        contact_id  TEXT NOT NULL,
        status      INTEGER NOT NULL,
        created_us  INTEGER NOT NULL,
        data        BLOB NOT NULL,
        plan        TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX runs_created ON runs (created_us DESC, id DESC);
    CREATE INDEX runs_contact ON runs (contact_id, created_us DESC);
    -- Pending connector deliveries. A row is claimed by pushing lease_us into the future;
    -- a crashed worker's claims are re-offered when the lease runs out.
    CREATE TABLE outbox (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id           TEXT NOT NULL,
        step_index       INTEGER NOT NULL,
        connector        TEXT NOT NULL,
        idempotency_key  TEXT NOT NULL,
        available_us     INTEGER NOT NULL,
        lease_us         INTEGER NOT NULL DEFAULT 0,
        attempts         INTEGER NOT NULL DEFAULT 0,
        UNIQUE (run_id, step_index)
    );
    CREATE INDEX outbox_due ON outbox (available_us);
    CREATE TABLE connector_state (
        connector   TEXT NOT NULL,
        collection  TEXT NOT NULL,
        key         TEXT NOT NULL,
        value       TEXT NOT NULL,
        PRIMARY KEY (connector, collection, key)
    ) WITHOUT ROWID;
    """,
    # 2: reliable dispatch. Dead letters keep what exhausted its retries or failed for good;
    # outbox rows learn their contact (per-contact ordering) and whether finishing them
    # advances the run (a redriven step does not: its run already moved past it).
    """
    CREATE TABLE dead_letters (
        id               TEXT PRIMARY KEY,
        run_id           TEXT NOT NULL,
        step_index       INTEGER NOT NULL,
        connector        TEXT NOT NULL,
        action           TEXT NOT NULL,
        contact_id       TEXT NOT NULL,
        idempotency_key  TEXT NOT NULL,
        reason           TEXT NOT NULL,
        attempts         INTEGER NOT NULL,
        last_error       TEXT NOT NULL,
        dead_us          INTEGER NOT NULL,
        UNIQUE (run_id, step_index)
    ) WITHOUT ROWID;
    CREATE INDEX dead_letters_connector ON dead_letters (connector, id);
    ALTER TABLE outbox ADD COLUMN contact_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN advance INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX outbox_contact_order ON outbox (contact_id, connector, id);
    """,
    # 3: wait steps, found by the inbound source and correlation key that resume them.
    """
    CREATE TABLE waits (
        run_id      TEXT NOT NULL,
        step_index  INTEGER NOT NULL,
        source      TEXT NOT NULL,
        key         TEXT NOT NULL,
        PRIMARY KEY (run_id, step_index)
    ) WITHOUT ROWID;
    CREATE INDEX waits_key ON waits (source, key);
    """,
    # 4: claims read each connector's due rows along this index instead of sorting the
    # whole backlog.
    """
    CREATE INDEX outbox_connector_due ON outbox (connector, available_us);
    """,
    # 5: one trace per run. A run keeps the W3C traceparent of the call that started it,
    # and its outbox rows copy it, so every delivery's span joins that call's trace.
    """
    ALTER TABLE runs ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
    ALTER TABLE outbox ADD COLUMN traceparent TEXT NOT NULL DEFAULT '';
    """,
    # 6: idempotency records learn whose data their stored answer holds, so erasing a
    # contact can drop them along an index.
    """
    ALTER TABLE idempotency ADD COLUMN contact_id TEXT NOT NULL DEFAULT '';
    CREATE INDEX idempotency_contact ON idempotency (contact_id);
    """,
    # 7: keys the server makes for itself, once per database, so that every worker and
    # replica on it agrees (the page-token key when none is configured).
    """
    CREATE TABLE server_keys (
        name  TEXT PRIMARY KEY,
        key   BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
    # 8: see REKEY_WAITS above.
    REKEY_WAITS,
    # 9: events carry their values (docs/events.md). Rows of version 2 hold a SealedEvent
    # (protobuf) and name the contact they are about; older rows stay version 1 (JSON).
    # Each contact's data key, wrapped by the server key; erasure deletes the row.
    """
    ALTER TABLE events ADD COLUMN contact_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE events ADD COLUMN version INTEGER NOT NULL DEFAULT 1;
    CREATE INDEX events_contact ON events (contact_id, seq);
    CREATE INDEX events_time ON events (at_us);
    CREATE TABLE contact_keys (
        contact_id  TEXT PRIMARY KEY,
        key_id      BLOB NOT NULL,
        wrapped     BLOB NOT NULL
    ) WITHOUT ROWID;
    """,
    # A/B variants: the variant of each run of a trigger with variants, read by
    # GetVariantResults per event and time range.
    """
    CREATE TABLE IF NOT EXISTS run_variants (
        run_id      TEXT PRIMARY KEY,
        event       TEXT NOT NULL,
        variant     TEXT NOT NULL,
        contact_id  TEXT NOT NULL,
        created_us  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS run_variants_event ON run_variants (event, created_us);
    """,
    # Segments: the read model of each live contact in typed columns (what a segment
    # expression is translated to SQL over), its purchases per day (the sliding windows),
    # and the segment definitions. See store/facts.py. Idempotent (IF NOT EXISTS), like
    # the audience one below, so a database set back to an older version migrates again.
    """
    CREATE TABLE IF NOT EXISTS segment_facts (
        contact_id               TEXT PRIMARY KEY,
        country                  TEXT NOT NULL DEFAULT '',
        attributes               TEXT NOT NULL DEFAULT '{}',
        attribute_count          INTEGER NOT NULL DEFAULT 0,
        list_count               INTEGER NOT NULL DEFAULT 0,
        consent_advertising      INTEGER NOT NULL DEFAULT 0,
        consent_analytics        INTEGER NOT NULL DEFAULT 0,
        consent_email_marketing  INTEGER NOT NULL DEFAULT 0,
        consent_personalization  INTEGER NOT NULL DEFAULT 0,
        consent_sms_marketing    INTEGER NOT NULL DEFAULT 0,
        lead_score               INTEGER NOT NULL DEFAULT 0,
        lead_grade               TEXT NOT NULL DEFAULT '',
        lead_status              TEXT NOT NULL DEFAULT 'NEW',
        purchases_30d            INTEGER NOT NULL DEFAULT 0,
        purchases_90d            INTEGER NOT NULL DEFAULT 0,
        purchases_365d           INTEGER NOT NULL DEFAULT 0,
        amount_30d               REAL NOT NULL DEFAULT 0,
        amount_90d               REAL NOT NULL DEFAULT 0,
        amount_365d              REAL NOT NULL DEFAULT 0,
        purchases_total          INTEGER NOT NULL DEFAULT 0,
        amount_total             REAL NOT NULL DEFAULT 0,
        average_basket           REAL NOT NULL DEFAULT 0,
        last_activity_us         INTEGER NOT NULL DEFAULT 0,
        last_purchase_us         INTEGER NOT NULL DEFAULT 0,
        last_cart_us             INTEGER NOT NULL DEFAULT 0,
        cart_without_order       INTEGER NOT NULL DEFAULT 0,
        created_us               INTEGER NOT NULL DEFAULT 0,
        expires_day              INTEGER NOT NULL DEFAULT 4611686018427387904
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS segment_facts_country ON segment_facts (country, purchases_90d);
    CREATE INDEX IF NOT EXISTS segment_facts_p30 ON segment_facts (purchases_30d);
    CREATE INDEX IF NOT EXISTS segment_facts_p90 ON segment_facts (purchases_90d);
    CREATE INDEX IF NOT EXISTS segment_facts_p365 ON segment_facts (purchases_365d);
    CREATE INDEX IF NOT EXISTS segment_facts_score ON segment_facts (lead_score);
    CREATE INDEX IF NOT EXISTS segment_facts_a90 ON segment_facts (amount_90d);
    CREATE INDEX IF NOT EXISTS segment_facts_a365 ON segment_facts (amount_365d);
    CREATE INDEX IF NOT EXISTS segment_facts_last ON segment_facts (last_activity_us);
    CREATE INDEX IF NOT EXISTS segment_facts_expires ON segment_facts (expires_day);
    CREATE TABLE IF NOT EXISTS activity_days (
        contact_id  TEXT NOT NULL,
        day         INTEGER NOT NULL,
        purchases   INTEGER NOT NULL,
        amount      REAL NOT NULL,
        PRIMARY KEY (contact_id, day)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS activity_days_day ON activity_days (day);
    CREATE TABLE IF NOT EXISTS segments (
        name  TEXT PRIMARY KEY,
        data  BLOB NOT NULL
    ) WITHOUT ROWID;
    -- Contacts written before this migration: built by the first segment query.
    INSERT INTO segment_facts (contact_id, expires_day)
        SELECT id, -1 FROM contacts WHERE true ON CONFLICT DO NOTHING;
    """,
    # Audience campaigns: one trigger for a segment's members, walked in chunks by contact
    # id; the cursor commits with each chunk's runs (store/audience.py).
    """
    CREATE TABLE IF NOT EXISTS campaigns (
        id          TEXT PRIMARY KEY,
        expression  TEXT NOT NULL,
        cursor      TEXT NOT NULL,
        walked      INTEGER NOT NULL,
        started     INTEGER NOT NULL,
        data        BLOB NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS campaigns_walking ON campaigns (walked, id);
    CREATE TABLE IF NOT EXISTS campaign_runs (
        campaign_id  TEXT NOT NULL,
        contact_id   TEXT NOT NULL,
        run_id       TEXT NOT NULL,
        PRIMARY KEY (campaign_id, contact_id)
    ) WITHOUT ROWID;
    """,
    # An import's sync runs cover a chunk of contacts each: `run_contacts` lists them, so
    # ListRuns(contact_id) finds a contact's chunk run; and a chunk step dead-letters each
    # failed contact on its own, so a dead letter is unique per (run, step, contact).
    # Each statement may run again (a database put back to an older version) unharmed.
    """
    CREATE TABLE IF NOT EXISTS run_contacts (
        contact_id  TEXT NOT NULL,
        run_id      TEXT NOT NULL,
        PRIMARY KEY (contact_id, run_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS run_contacts_run ON run_contacts (run_id);
    CREATE TABLE IF NOT EXISTS dead_letters_9 (
        id               TEXT PRIMARY KEY,
        run_id           TEXT NOT NULL,
        step_index       INTEGER NOT NULL,
        connector        TEXT NOT NULL,
        action           TEXT NOT NULL,
        contact_id       TEXT NOT NULL,
        idempotency_key  TEXT NOT NULL,
        reason           TEXT NOT NULL,
        attempts         INTEGER NOT NULL,
        last_error       TEXT NOT NULL,
        dead_us          INTEGER NOT NULL,
        UNIQUE (run_id, step_index, contact_id)
    ) WITHOUT ROWID;
    INSERT INTO dead_letters_9 SELECT id, run_id, step_index, connector, action, contact_id,
        idempotency_key, reason, attempts, last_error, dead_us FROM dead_letters;
    DROP TABLE dead_letters;
    ALTER TABLE dead_letters_9 RENAME TO dead_letters;
    CREATE INDEX dead_letters_connector ON dead_letters (connector, id);
    """,
    # Segments' change log: every write to segment_facts (insert, update, delete, whoever
    # makes it) appends the contact id, so each server's in-memory column snapshot
    # (domain/segment_snapshot.py) catches up by reading the rows after its watermark.
    """
    CREATE TABLE IF NOT EXISTS segment_facts_log (
        seq         INTEGER PRIMARY KEY AUTOINCREMENT,
        contact_id  TEXT NOT NULL
    );
    CREATE TRIGGER IF NOT EXISTS segment_facts_log_insert AFTER INSERT ON segment_facts
    BEGIN INSERT INTO segment_facts_log (contact_id) VALUES (new.contact_id); END;
    CREATE TRIGGER IF NOT EXISTS segment_facts_log_update AFTER UPDATE ON segment_facts
    BEGIN INSERT INTO segment_facts_log (contact_id) VALUES (new.contact_id); END;
    CREATE TRIGGER IF NOT EXISTS segment_facts_log_delete AFTER DELETE ON segment_facts
    BEGIN INSERT INTO segment_facts_log (contact_id) VALUES (old.contact_id); END;
    """,
    # A sync change coalesces with its contact's newest PENDING run: only PENDING runs are
    # indexed (few at any time), so the look-up stays small however many runs a contact has.
    """
    CREATE INDEX IF NOT EXISTS runs_pending ON runs (contact_id, event, created_us DESC)
        WHERE status = 1;
    """,
    # The change log names a contact only when a column the snapshot (or a segment's SQL)
    # reads changed: the facts upkeep of a write that changed nothing it reads (a first
    # name, a bookkeeping column) no longer appends a row for every server to reload.
    """
    DROP TRIGGER IF EXISTS segment_facts_log_update;
    CREATE TRIGGER segment_facts_log_update AFTER UPDATE ON segment_facts
    WHEN
        old.country IS NOT new.country OR old.attributes IS NOT new.attributes OR
        old.attribute_count IS NOT new.attribute_count OR
        old.list_count IS NOT new.list_count OR
        old.consent_advertising IS NOT new.consent_advertising OR
        old.consent_analytics IS NOT new.consent_analytics OR
        old.consent_email_marketing IS NOT new.consent_email_marketing OR
        old.consent_personalization IS NOT new.consent_personalization OR
        old.consent_sms_marketing IS NOT new.consent_sms_marketing OR
        old.lead_score IS NOT new.lead_score OR old.lead_grade IS NOT new.lead_grade OR
        old.lead_status IS NOT new.lead_status OR
        old.purchases_30d IS NOT new.purchases_30d OR
        old.purchases_90d IS NOT new.purchases_90d OR
        old.purchases_365d IS NOT new.purchases_365d OR
        old.amount_30d IS NOT new.amount_30d OR old.amount_90d IS NOT new.amount_90d OR
        old.amount_365d IS NOT new.amount_365d OR
        old.purchases_total IS NOT new.purchases_total OR
        old.average_basket IS NOT new.average_basket OR
        old.last_activity_us IS NOT new.last_activity_us OR
        old.cart_without_order IS NOT new.cart_without_order OR
        old.created_us IS NOT new.created_us
    BEGIN INSERT INTO segment_facts_log (contact_id) VALUES (new.contact_id); END;
    """,
    # A chunk run's contacts while the run is PENDING, so that coalescing a change finds a
    # contact's unclaimed chunk run without walking every chunk run the contact was ever in
    # (`run_contacts` keeps those for ListRuns): that walk grew with each import of the same
    # people and tipped a steady import load over after three minutes. A run leaving PENDING
    # drops its rows here (runs are never deleted, and only `put_run` changes a status).
    """
    CREATE TABLE IF NOT EXISTS run_contacts_pending (
        contact_id  TEXT NOT NULL,
        run_id      TEXT NOT NULL,
        PRIMARY KEY (contact_id, run_id)
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS run_contacts_pending_run ON run_contacts_pending (run_id);
    INSERT OR IGNORE INTO run_contacts_pending (contact_id, run_id)
        SELECT c.contact_id, c.run_id FROM runs r JOIN run_contacts c ON c.run_id = r.id
        WHERE r.status = 1;
    CREATE TRIGGER IF NOT EXISTS run_contacts_pending_done AFTER UPDATE OF status ON runs
    WHEN old.status = 1 AND new.status IS NOT 1
    BEGIN DELETE FROM run_contacts_pending WHERE run_id = new.id; END;
    """,
    # Most events are a contact's own (its aggregate is the contact), and `events_contact`
    # already holds them in the same order: indexing them by aggregate as well wrote a
    # second random leaf page per event, once the tables outgrew the cache (each import
    # row's event landing on a page of its own). Queries by aggregate now read those events
    # from `events_contact` (see `sqlite/events.py`).
    """
    DROP INDEX IF EXISTS events_aggregate;
    CREATE INDEX IF NOT EXISTS events_other_aggregate ON events (aggregate_id, seq)
        WHERE aggregate_id <> contact_id;
    """,
    # A contact change carried by an import chunk's sync run names that run on its event,
    # and ListRuns(contact_id) finds a contact's chunk runs through `events_contact`, which
    # every change writes anyway. `run_contacts`, keyed by contact, wrote one more random
    # leaf page per imported row once each contact had a page of its own there: 1.03 of
    # 3.36 pages a row after 60 imports of the same 20,000 people. It keeps the rows
    # written before this version and is read beside the events; it gets no new rows.
    """
    ALTER TABLE events ADD COLUMN run_id TEXT;
    """,
    # ListRuns(status=FAILED), an operator's first question, walked `runs_created` through
    # every run to find the few that failed: 0.75 s a page at 2,000,000 runs. Failed runs
    # only, so the index costs a write only when a run fails, never on the path of the others.
    """
    CREATE INDEX IF NOT EXISTS runs_failed ON runs (created_us DESC, id DESC) WHERE status = 4;
    """,
    # ListRuns(event=...) and ListRuns(status=PENDING|RUNNING) walked `runs_created` too:
    # 0.6 s a page at 2,000,000 runs for an event or state that few runs have. By event,
    # every run gains an entry, at the newest end of its event's range, so a COMMIT's runs
    # of one event share a page or two. Open runs only: an entry lives while its run does.
    # Both ascending, read backwards for "newest first": new keys always go at the end, and
    # SQLite splits a full page at the end cheaply, where an insert at the start of a
    # descending index splits it in the middle and writes more pages. `runs_created` is
    # rebuilt ascending for the same reason: 0.76 of a unary write's 12.9 pages were its.
    """
    CREATE INDEX IF NOT EXISTS runs_event ON runs (event, created_us, id);
    CREATE INDEX IF NOT EXISTS runs_open ON runs (created_us, id) WHERE status IN (1, 2);
    DROP INDEX IF EXISTS runs_created;
    CREATE INDEX runs_created ON runs (created_us, id);
    """,
    # ListRuns(event=..., status=FAILED) walked the event's runs (`runs_event`) to find its
    # few failures: every run of a common event, newest first. Failed runs only, like
    # `runs_failed`: written when a run fails, never on the path of the others.
    """
    CREATE INDEX IF NOT EXISTS runs_event_failed ON runs (event, created_us, id)
        WHERE status = 4;
    """,
]

# The schema this code knows: a database at a newer version was written by newer code.
SCHEMA_VERSION = len(MIGRATIONS)
