"""PostgreSQL schema. Additive changes only: append a migration (its number is its position).

The list starts at the SQLite schema's current shape (its eight migrations folded into
one): PostgreSQL support is new, so it has no older databases to carry forward. Its
versions are its own and unrelated to SQLite's `user_version`.

Text keys that are paged or range-scanned (`id > cursor`, `key >= prefix`) use the "C"
collation: byte order, as SQLite compares, whatever the database's default collation.
Times are integer microseconds (bigint); messages are protobuf bytes (bytea).
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    """
    CREATE TABLE contacts (
        id          text COLLATE "C" PRIMARY KEY,
        email       text NOT NULL UNIQUE,
        updated_us  bigint NOT NULL,
        data        bytea NOT NULL
    );
    CREATE INDEX contacts_updated ON contacts (updated_us, id);
    CREATE TABLE contact_lists (
        list        text NOT NULL,
        contact_id  text COLLATE "C" NOT NULL,
        PRIMARY KEY (list, contact_id)
    );
    CREATE INDEX contact_lists_contact ON contact_lists (contact_id);
    -- Erased contacts: no personal data, only a hash of the email so that a later sync of
    -- the same address is recognised and refused.
    CREATE TABLE tombstones (
        contact_id  text PRIMARY KEY,
        email_hash  text NOT NULL UNIQUE,
        deleted_us  bigint NOT NULL
    );
    -- Append-only log: every accepted write is also an event.
    CREATE TABLE events (
        seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        type          text NOT NULL,
        aggregate_id  text NOT NULL,
        at_us         bigint NOT NULL,
        payload       bytea NOT NULL
    );
    CREATE INDEX events_aggregate ON events (aggregate_id, seq);
    CREATE FUNCTION switchboard_events_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'events are append-only'; END $$;
    CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
        FOR EACH ROW EXECUTE FUNCTION switchboard_events_append_only();
    CREATE TABLE idempotency (
        key           text PRIMARY KEY,
        method        text NOT NULL,
        request_hash  text NOT NULL,
        response      bytea NOT NULL,
        at_us         bigint NOT NULL,
        contact_id    text NOT NULL DEFAULT ''
    );
    CREATE INDEX idempotency_age ON idempotency (at_us);
    CREATE INDEX idempotency_contact ON idempotency (contact_id);
    CREATE TABLE leads (
        contact_id  text PRIMARY KEY,
        data        bytea NOT NULL
    );
    CREATE TABLE activities (
        id           text PRIMARY KEY,
        contact_id   text NOT NULL,
        type         text NOT NULL,
        occurred_us  bigint NOT NULL,
        value        double precision NOT NULL,
        attributes   bytea NOT NULL
    );
    CREATE INDEX activities_contact ON activities (contact_id, occurred_us);
    CREATE TABLE runs (
        id           text COLLATE "C" PRIMARY KEY,
        event        text NOT NULL,
        contact_id   text NOT NULL,
        status       integer NOT NULL,
        created_us   bigint NOT NULL,
        data         bytea NOT NULL,
        plan         text NOT NULL,
        traceparent  text NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_created ON runs (created_us DESC, id DESC);
    CREATE INDEX runs_contact ON runs (contact_id, created_us DESC);
    -- Pending connector deliveries. A row is claimed (FOR UPDATE SKIP LOCKED) by pushing
    -- lease_us into the future; a crashed replica's claims are re-offered when it runs out.
    CREATE TABLE outbox (
        id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        run_id           text NOT NULL,
        step_index       integer NOT NULL,
        connector        text COLLATE "C" NOT NULL,
        idempotency_key  text NOT NULL,
        available_us     bigint NOT NULL,
        lease_us         bigint NOT NULL DEFAULT 0,
        attempts         integer NOT NULL DEFAULT 0,
        contact_id       text NOT NULL DEFAULT '',
        advance          boolean NOT NULL DEFAULT true,
        traceparent      text NOT NULL DEFAULT '',
        UNIQUE (run_id, step_index)
    );
    CREATE INDEX outbox_due ON outbox (available_us);
    CREATE INDEX outbox_contact_order ON outbox (contact_id, connector, id);
    CREATE INDEX outbox_connector_due ON outbox (connector, available_us);
    CREATE TABLE connector_state (
        connector   text COLLATE "C" NOT NULL,
        collection  text COLLATE "C" NOT NULL,
        key         text COLLATE "C" NOT NULL,
        value       text NOT NULL,
        PRIMARY KEY (connector, collection, key)
    );
    -- Erasure finds a person's records in every connector's collections by key.
    CREATE INDEX connector_state_key ON connector_state (key);
    CREATE TABLE dead_letters (
        id               text COLLATE "C" PRIMARY KEY,
        run_id           text NOT NULL,
        step_index       integer NOT NULL,
        connector        text NOT NULL,
        action           text NOT NULL,
        contact_id       text NOT NULL,
        idempotency_key  text NOT NULL,
        reason           text NOT NULL,
        attempts         integer NOT NULL,
        last_error       text NOT NULL,
        dead_us          bigint NOT NULL,
        UNIQUE (run_id, step_index)
    );
    CREATE INDEX dead_letters_connector ON dead_letters (connector, id);
    CREATE TABLE waits (
        run_id      text COLLATE "C" NOT NULL,
        step_index  integer NOT NULL,
        source      text NOT NULL,
        key         text NOT NULL,
        PRIMARY KEY (run_id, step_index)
    );
    CREATE INDEX waits_key ON waits (source, key);
    CREATE TABLE server_keys (
        name  text PRIMARY KEY,
        key   bytea NOT NULL
    );
    """,
    # An import's sync runs cover a chunk of contacts each: `run_contacts` lists them, so
    # ListRuns(contact_id) finds a contact's chunk run; and a chunk step dead-letters each
    # failed contact on its own, so a dead letter is unique per (run, step, contact).
    """
    CREATE TABLE run_contacts (
        contact_id  text COLLATE "C" NOT NULL,
        run_id      text COLLATE "C" NOT NULL,
        PRIMARY KEY (contact_id, run_id)
    );
    CREATE INDEX run_contacts_run ON run_contacts (run_id);
    ALTER TABLE dead_letters DROP CONSTRAINT dead_letters_run_id_step_index_key;
    ALTER TABLE dead_letters ADD UNIQUE (run_id, step_index, contact_id);
    """,
]

# The schema this code knows: a database at a newer version was written by newer code.
SCHEMA_VERSION = len(MIGRATIONS)
