-- codestep schema 1 (PostgreSQL): workspaces, connectors with sealed secrets, audit trail, key checks.
-- Names are unique ignoring case through the *_key columns (lowercased by codestep).

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE connectors (
    id                 TEXT PRIMARY KEY,
    workspace_id       TEXT NOT NULL REFERENCES workspaces (id) ON DELETE CASCADE,
    name               TEXT NOT NULL,
    name_key           TEXT NOT NULL,
    patterns           TEXT NOT NULL,            -- JSON array of normalised pattern strings
    placement          TEXT NOT NULL,            -- JSON, as connector::Placement serialises
    scrub_echo         BOOLEAN NOT NULL DEFAULT FALSE,
    secret_ciphertext  BYTEA NOT NULL,            -- AES-256-GCM ciphertext with its tag
    secret_nonce       BYTEA NOT NULL,            -- 96-bit nonce
    key_version        INTEGER NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    UNIQUE (workspace_id, name_key)
);

CREATE INDEX connectors_by_key_version ON connectors (key_version);

-- Who changed which connector, and how. Names are copied (not referenced) so entries outlive deletions.
-- Never holds a secret.
CREATE TABLE audit_log (
    id            BIGSERIAL PRIMARY KEY,
    at            BIGINT NOT NULL,
    actor         TEXT NOT NULL,
    action        TEXT NOT NULL,
    workspace_id  TEXT,
    workspace     TEXT NOT NULL,
    connector     TEXT,
    detail        TEXT NOT NULL DEFAULT ''
);

CREATE INDEX audit_log_by_workspace ON audit_log (workspace_id, id);

-- One check value per master key version ever used here, to tell a wrong key from a tampered row.
CREATE TABLE master_key_checks (
    version      INTEGER PRIMARY KEY,
    check_value  BYTEA NOT NULL,
    created_at   BIGINT NOT NULL
);
