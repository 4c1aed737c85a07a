-- codestep schema 6 (PostgreSQL): a run's input and output, kept only when its workspace opts in, sealed
-- like connector secrets (AES-256-GCM, associated data binding workspace, run, field and key
-- version); and what an upstream said when it answered with an error (status text, a short excerpt
-- of its body, always scrubbed of the connector's secret).

-- Off by default: nothing of a run's input or output is stored unless the workspace asks.
ALTER TABLE workspaces ADD COLUMN keep_run_io BOOLEAN NOT NULL DEFAULT FALSE;

-- NULL unless the workspace kept run input and output when the run was recorded. The output is NULL
-- too when the run had none (it failed).
ALTER TABLE runs ADD COLUMN input_ciphertext BYTEA;
ALTER TABLE runs ADD COLUMN input_nonce BYTEA;
ALTER TABLE runs ADD COLUMN output_ciphertext BYTEA;
ALTER TABLE runs ADD COLUMN output_nonce BYTEA;
ALTER TABLE runs ADD COLUMN io_key_version INTEGER;

-- Only for responses with a status of 400 or more.
ALTER TABLE fetch_attempts ADD COLUMN status_text TEXT;
ALTER TABLE fetch_attempts ADD COLUMN error_excerpt TEXT;
