-- codestep schema 4 (SQLite): run history. One row per run, written in the same transaction as the
-- run's fetch records (which name it by run_id). Never the step's input or output: only their sizes.

CREATE TABLE runs (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL,
    started_at     INTEGER NOT NULL,
    ended_at       INTEGER NOT NULL,
    -- SHA-256 of the step's code, hex: which step this was, without keeping the code.
    step_hash      TEXT NOT NULL,
    -- The label of the token that asked for the run (never the token).
    token          TEXT NOT NULL,
    -- `ok` or the error kind.
    outcome        TEXT NOT NULL,
    error_message  TEXT,
    duration_ms    REAL NOT NULL,
    fetches        INTEGER NOT NULL,
    output_bytes   INTEGER NOT NULL,
    logs_dropped   INTEGER NOT NULL,
    -- The step's console log as JSON, capped as the step's log is.
    logs           TEXT NOT NULL
);

-- A workspace's runs, newest first (the id breaks ties and is the cursor's second half).
CREATE INDEX runs_by_workspace ON runs (workspace_id, started_at, id);
CREATE INDEX runs_by_time ON runs (started_at);
-- A run's fetch records.
CREATE INDEX fetch_attempts_by_run ON fetch_attempts (run_id);
