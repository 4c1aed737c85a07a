-- codestep schema 5 (PostgreSQL): token scopes and expiry, and the address each audited change came from.

-- A comma-separated subset of `run`, `read`, `manage`. Tokens made before scopes existed could do all of
-- it in their workspace, and keep doing so.
ALTER TABLE api_tokens ADD COLUMN scopes TEXT NOT NULL DEFAULT 'run,read,manage';
-- Milliseconds since the epoch; NULL means the token does not expire.
ALTER TABLE api_tokens ADD COLUMN expires_at BIGINT;

-- The client address of the API call that made the change (NULL for the CLI).
ALTER TABLE audit_log ADD COLUMN address TEXT;
