//! Result rows into the store's types: the column lists the statements select, and the conversions.

use super::db::{Row, Value};
use super::{
    patterns_from_json, placement_from_json, ApiToken, ConnectorRecord, FetchAttempt, RunRecord,
    Scopes, SealedRunIo, StoreError, Workspace,
};
use crate::vault::Sealed;

/// The columns [`workspace_row`] reads.
pub(crate) const WORKSPACE_COLUMNS: &str = "id, name, created_at, keep_run_io";

pub(crate) fn workspace_row(r: &Row) -> Result<Workspace, StoreError> {
    Ok(Workspace {
        id: r.text(0)?,
        name: r.text(1)?,
        created_at: r.int(2)?,
        keep_run_io: r.bool(3)?,
    })
}

pub(crate) const CONNECTOR_SELECT: &str =
    "SELECT c.id, c.workspace_id, w.name, c.name, c.patterns, c.placement, c.scrub_echo,
     c.secret_ciphertext, c.secret_nonce, c.key_version, c.created_at, c.updated_at
     FROM connectors c JOIN workspaces w ON w.id = c.workspace_id";

pub(crate) fn key_version(v: i64, connector: &str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| {
        StoreError::Schema(format!(
            "connector {connector:?} has an impossible key version"
        ))
    })
}

pub(crate) fn connector_row(r: &Row) -> Result<ConnectorRecord, StoreError> {
    let name = r.text(3)?;
    Ok(ConnectorRecord {
        id: r.text(0)?,
        workspace_id: r.text(1)?,
        workspace_name: r.text(2)?,
        patterns: patterns_from_json(&r.text(4)?, &name)?,
        placement: placement_from_json(&r.text(5)?, &name)?,
        scrub_echo: r.bool(6)?,
        sealed: Sealed {
            ciphertext: r.blob(7)?,
            nonce: r.blob(8)?,
            key_version: key_version(r.int(9)?, &name)?,
        },
        created_at: r.int(10)?,
        updated_at: r.int(11)?,
        name,
    })
}

pub(crate) const TOKEN_SELECT: &str =
    "SELECT t.id, t.workspace_id, w.name, t.name, t.created_at, t.last_used_at, t.revoked_at,
            t.scopes, t.expires_at
     FROM api_tokens t JOIN workspaces w ON w.id = t.workspace_id";

pub(crate) fn token_row(r: &Row) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: r.text(0)?,
        workspace_id: r.text(1)?,
        workspace_name: r.text(2)?,
        name: r.text(3)?,
        created_at: r.int(4)?,
        last_used_at: r.opt_int(5)?,
        revoked_at: r.opt_int(6)?,
        scopes: Scopes::from_stored(&r.text(7)?)?,
        expires_at: r.opt_int(8)?,
    })
}

pub(crate) const FETCH_COLUMNS: &str =
    "at, run_id, connector, method, host, path, status, error, blocked, redirects, duration_ms, \
     status_text, error_excerpt";

/// A [`FetchAttempt`] from the [`FETCH_COLUMNS`] starting at column `i`.
pub(crate) fn fetch_attempt_at(r: &Row, i: usize) -> Result<FetchAttempt, StoreError> {
    Ok(FetchAttempt {
        at_ms: r.int(i)?,
        run_id: r.opt_text(i + 1)?,
        connector: r.opt_text(i + 2)?,
        method: r.text(i + 3)?,
        host: r.text(i + 4)?,
        path: r.text(i + 5)?,
        status: r.opt_int(i + 6)?.and_then(|s| u16::try_from(s).ok()),
        error: r.opt_text(i + 7)?,
        blocked: r.bool(i + 8)?,
        redirects: r.int(i + 9)?.clamp(0, i64::from(u32::MAX)) as u32,
        duration_ms: r.real(i + 10)?,
        status_text: r.opt_text(i + 11)?,
        error_excerpt: r.opt_text(i + 12)?,
    })
}

pub(crate) fn count(v: i64) -> u64 {
    v.max(0) as u64
}

pub(crate) const RUN_COLUMNS: &str =
    "id, workspace_id, started_at, ended_at, step_hash, token, outcome, \
     error_message, duration_ms, fetches, output_bytes, logs_dropped, logs, \
     input_ciphertext, input_nonce, output_ciphertext, output_nonce, io_key_version";

/// The sealed run input and output in the five columns from `i` (ciphertext and nonce of the input,
/// of the output, key version), if there are any.
pub(crate) fn run_io_at(r: &Row, i: usize, run: &str) -> Result<Option<SealedRunIo>, StoreError> {
    let Some(version) = r.opt_int(i + 4)? else {
        return Ok(None);
    };
    let key_version = u32::try_from(version)
        .map_err(|_| StoreError::Schema(format!("run {run:?} has an impossible key version")))?;
    let sealed = |c: usize| -> Result<Option<Sealed>, StoreError> {
        if matches!(r.0.get(c), None | Some(Value::Null)) {
            return Ok(None);
        }
        Ok(Some(Sealed {
            ciphertext: r.blob(c)?,
            nonce: r.blob(c + 1)?,
            key_version,
        }))
    };
    let input = sealed(i)?.ok_or_else(|| {
        StoreError::Schema(format!("run {run:?} has a key version but no sealed input"))
    })?;
    Ok(Some(SealedRunIo {
        input,
        output: sealed(i + 2)?,
    }))
}

pub(crate) fn run_row(r: &Row) -> Result<RunRecord, StoreError> {
    Ok(RunRecord {
        id: r.text(0)?,
        workspace_id: r.text(1)?,
        started_at: r.int(2)?,
        ended_at: r.int(3)?,
        step_hash: r.text(4)?,
        token: r.text(5)?,
        outcome: r.text(6)?,
        error_message: r.opt_text(7)?,
        duration_ms: r.real(8)?,
        fetches: r.int(9)?.clamp(0, i64::from(u32::MAX)) as u32,
        output_bytes: count(r.int(10)?),
        logs_dropped: count(r.int(11)?),
        logs: r.text(12)?,
        io: run_io_at(r, 13, &r.text(0)?)?,
    })
}
