-- codestep schema 3 (SQLite): fetch monitoring. Each attempt gets its outcome and a lowercased connector
-- key (indexed filters), and per-minute buckets keep the counts that the dashboard reads, updated in the
-- same transaction as the attempts are inserted (atomic upserts, so concurrent writers add up).

ALTER TABLE fetch_attempts ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok'
    CHECK (outcome IN ('ok', 'http_error', 'network_error', 'timeout', 'blocked'));
-- The connector name lowercased (names are unique ignoring case); NULL without a connector.
ALTER TABLE fetch_attempts ADD COLUMN connector_key TEXT;

-- The same rules as Outcome::classify.
UPDATE fetch_attempts SET
    outcome = CASE
        WHEN blocked THEN 'blocked'
        WHEN error = 'timeout' THEN 'timeout'
        WHEN error IS NOT NULL THEN 'network_error'
        WHEN status IS NULL THEN 'network_error'
        WHEN status >= 400 THEN 'http_error'
        ELSE 'ok'
    END,
    connector_key = lower(connector);

-- A connector's log, newest first.
CREATE INDEX fetch_attempts_by_connector ON fetch_attempts (workspace_id, connector_key, id);
-- A connector's error log, newest first: only error rows, so it stays small and dense. Queries repeat
-- this exact condition so the planner can use it.
CREATE INDEX fetch_attempts_errors ON fetch_attempts (workspace_id, connector_key, id)
    WHERE outcome IN ('http_error', 'network_error', 'timeout');
-- The workspace's blocked requests, newest first.
CREATE INDEX fetch_attempts_blocked ON fetch_attempts (workspace_id, id)
    WHERE outcome = 'blocked';
-- Retention deletes by time.
CREATE INDEX fetch_attempts_by_at ON fetch_attempts (at);

-- Requests and errors per connector and minute (minute = `at` rounded down to a whole minute, in ms).
-- Clustered by (workspace, minute) so a rolling window of a workspace is one range scan.
CREATE TABLE fetch_buckets (
    workspace_id   TEXT NOT NULL,
    minute         INTEGER NOT NULL,
    connector_key  TEXT NOT NULL,
    connector      TEXT NOT NULL,     -- the name as last recorded
    requests       INTEGER NOT NULL,
    errors         INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, minute, connector_key)
) WITHOUT ROWID;

CREATE INDEX fetch_buckets_by_connector ON fetch_buckets (workspace_id, connector_key, minute);
CREATE INDEX fetch_buckets_by_minute ON fetch_buckets (minute);

-- Requests blocked by policy per workspace and minute.
CREATE TABLE blocked_buckets (
    workspace_id  TEXT NOT NULL,
    minute        INTEGER NOT NULL,
    requests      INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, minute)
) WITHOUT ROWID;

CREATE INDEX blocked_buckets_by_minute ON blocked_buckets (minute);

-- Counts of the attempts recorded before this schema.
INSERT INTO fetch_buckets (workspace_id, minute, connector_key, connector, requests, errors)
SELECT workspace_id, (at / 60000) * 60000, connector_key, MAX(connector), COUNT(*),
       SUM(outcome IN ('http_error', 'network_error', 'timeout'))
FROM fetch_attempts
WHERE workspace_id IS NOT NULL AND connector_key IS NOT NULL AND outcome <> 'blocked'
GROUP BY workspace_id, (at / 60000) * 60000, connector_key;

INSERT INTO blocked_buckets (workspace_id, minute, requests)
SELECT workspace_id, (at / 60000) * 60000, COUNT(*)
FROM fetch_attempts
WHERE workspace_id IS NOT NULL AND outcome = 'blocked'
GROUP BY workspace_id, (at / 60000) * 60000;
