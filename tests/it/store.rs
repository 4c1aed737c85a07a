//! The store suite, run against both backends: SQLite (a real file in a temporary directory) and
//! PostgreSQL (the server named by `CODESTEP_TEST_PG_URL`, a fresh schema per test; start one with
//! `eval "$(scripts/pg-test-server)"`). The PostgreSQL tests fail, not skip, when that variable is unset.

use std::collections::HashMap;
use std::sync::Arc;

use codestep::connector::{ConnectorSpec, Placement, Secret};
use codestep::store::{
    self, ConnectorUpdate, Counts, FetchAttempt, FetchLogQuery, Outcome, Store, StoreError,
};
use codestep::vault::{Keyring, MasterKey, Vault, VaultError};

const ACTOR: &store::Actor = &store::Actor::named("test:store");

fn all_scopes() -> store::TokenGrant {
    store::TokenGrant {
        scopes: store::Scopes::all(),
        expires_at: None,
    }
}
const SECRET_A: &str = "sk_test_AAAAAAAAAAAAAAAAAAAA";
const SECRET_B: &str = "sk_test_BBBBBBBBBBBBBBBBBBBB";
const SECRET_C: &str = "sk_test_CCCCCCCCCCCCCCCCCCCC";

#[derive(Clone, Copy, Debug, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

struct Fixture {
    backend: Backend,
    location: String,
    store: Arc<dyn Store>,
    dir: tempfile::TempDir,
}

fn pg_url() -> String {
    match std::env::var("CODESTEP_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "CODESTEP_TEST_PG_URL is not set: the PostgreSQL store tests need a server. \
             Start one with: eval \"$(scripts/pg-test-server)\""
        ),
    }
}

async fn pg_admin() -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(&pg_url(), tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to CODESTEP_TEST_PG_URL: {e}"));
    tokio::spawn(conn);
    client
}

fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).unwrap();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

async fn fresh_location(backend: Backend, dir: &tempfile::TempDir) -> String {
    match backend {
        Backend::Sqlite => dir.path().join("store.db").to_string_lossy().into_owned(),
        Backend::Postgres => {
            let schema = format!("t_{}", random_suffix());
            pg_admin()
                .await
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await
                .expect("create schema");
            let url = pg_url();
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}options=-csearch_path%3D{schema}")
        }
    }
}

async fn fixture(backend: Backend) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let location = fresh_location(backend, &dir).await;
    let store = store::open(&location).await.expect("open store");
    Fixture {
        backend,
        location,
        store,
        dir,
    }
}

impl Fixture {
    async fn reopen(&self) -> Arc<dyn Store> {
        store::open(&self.location).await.expect("reopen store")
    }

    /// Runs raw SQL against the store's database (outside the store), for tampering.
    async fn raw_set_secret(
        &self,
        connector_id: &str,
        ciphertext: &[u8],
        nonce: &[u8],
        key_version: u32,
    ) {
        match self.backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(&self.location).unwrap();
                c.busy_timeout(std::time::Duration::from_secs(10)).unwrap();
                let n = c
                    .execute(
                        "UPDATE connectors SET secret_ciphertext = ?1, secret_nonce = ?2, key_version = ?3 WHERE id = ?4",
                        rusqlite::params![ciphertext, nonce, key_version, connector_id],
                    )
                    .unwrap();
                assert_eq!(n, 1);
            }
            Backend::Postgres => {
                let client = self.pg_client().await;
                let n = client
                    .execute(
                        "UPDATE connectors SET secret_ciphertext = $1, secret_nonce = $2, key_version = $3 WHERE id = $4",
                        &[&ciphertext, &nonce, &(key_version as i32), &connector_id],
                    )
                    .await
                    .unwrap();
                assert_eq!(n, 1);
            }
        }
    }

    async fn raw_exec(&self, sql: &str) {
        match self.backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(&self.location).unwrap();
                c.execute_batch(sql).unwrap();
            }
            Backend::Postgres => self.pg_client().await.batch_execute(sql).await.unwrap(),
        }
    }

    /// The recorded migrations: `(version, checksum)` in version order.
    async fn raw_checksums(&self) -> Vec<(i64, Option<String>)> {
        let sql = "SELECT version, checksum FROM codestep_schema ORDER BY version";
        match self.backend {
            Backend::Sqlite => {
                let c = rusqlite::Connection::open(&self.location).unwrap();
                let mut stmt = c.prepare(sql).unwrap();
                let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
                rows.map(Result::unwrap).collect()
            }
            Backend::Postgres => self
                .pg_client()
                .await
                .query(sql, &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (i64::from(r.get::<_, i32>(0)), r.get(1)))
                .collect(),
        }
    }

    async fn pg_client(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.location, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
    }
}

fn vault_with(keys: &[(u32, u8)]) -> Vault {
    Vault::new(
        Keyring::new(
            keys.iter()
                .map(|(v, f)| MasterKey::from_bytes(*v, [*f; 32]))
                .collect(),
        )
        .unwrap(),
    )
}

fn header_spec(name: &str, pattern: &str) -> ConnectorSpec {
    ConnectorSpec {
        name: name.into(),
        patterns: vec![pattern.into()],
        placement: Placement::header("Authorization".into(), "Bearer {{secret}}".into()),
        scrub_echo: false,
    }
}

fn secret(s: &str) -> Secret {
    Secret::new(s.into())
}

async fn decrypt(f: &Fixture, vault: &Vault, ws: &str, name: &str) -> Result<String, StoreError> {
    let rec = f.store.connector(ws, name).await?;
    store::decrypt_secret(&*f.store, vault, &rec)
        .await
        .map(|s| s.expose().to_string())
}

/// Fails the test if an error message contains any of the test secrets.
fn no_secret_in(text: &str) {
    for s in [SECRET_A, SECRET_B, SECRET_C] {
        assert!(!text.contains(s), "a message leaks a secret");
    }
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Postgres).await
                }
            )*
        }
    };
}

both_backends!(
    migrations_apply_once_and_persist,
    newer_schema_is_refused,
    older_schema_is_upgraded_in_place,
    workspaces_are_unique_ignoring_case,
    connector_lifecycle_with_audit_trail,
    connector_names_are_unique_per_workspace_ignoring_case,
    update_touches_only_what_is_given,
    persistence_across_reopen,
    tamper_bit_flip_and_truncation,
    tamper_row_swap,
    tamper_wrong_key_version,
    wrong_master_key_is_reported,
    rotation_reencrypts_every_secret,
    kept_run_io_is_sealed_bound_to_its_run_and_rotated,
    interrupted_rotation_keeps_every_secret_readable,
    rotation_with_env_style_keys,
    concurrent_creates_never_lose_or_duplicate,
    load_step_connectors_keeps_order_and_rejects_unknown,
    deleting_a_workspace_deletes_its_connectors,
    invalid_input_names_field_and_rule,
    api_tokens_are_stored_hashed,
    fetch_attempts_roundtrip,
    monitoring_counts_are_rolling_24_hours,
    monitoring_series_is_dense_and_adds_up,
    monitoring_log_paginates_newest_first,
    monitoring_log_filters,
    monitoring_workspaces_are_isolated,
    connector_health_tells_some_errors_from_failing,
    monitoring_counts_add_up_with_concurrent_writers,
    monitoring_prune_deletes_in_batches,
    monitoring_prune_does_not_block_writers,
    monitoring_upgrade_backfills_outcomes_and_counts,
    monitoring_reads_are_index_scans,
    edited_migration_is_refused_by_name,
    stores_without_checksums_get_them_on_first_start,
    reads_do_not_wait_behind_a_write,
    authentications_go_on_while_retention_runs,
    a_run_reads_its_connectors_in_one_call,
    run_history_pages_filters_and_keeps_a_runs_requests,
    a_row_written_before_named_secrets_still_decrypts_and_injects,
    named_secrets_are_one_sealed_set_and_the_secret_rule_needs_all_of_them,
);

async fn migrations_apply_once_and_persist(b: Backend) {
    let f = fixture(b).await;
    let latest = store::migrate::latest(match b {
        Backend::Sqlite => store::migrate::SQLITE,
        Backend::Postgres => store::migrate::POSTGRES,
    });
    assert_eq!(f.store.schema_version().await.unwrap(), latest);
    // Opening again (and concurrently) applies nothing twice.
    let (a, c) = tokio::join!(store::open(&f.location), store::open(&f.location));
    assert_eq!(a.unwrap().schema_version().await.unwrap(), latest);
    assert_eq!(c.unwrap().schema_version().await.unwrap(), latest);
    if b == Backend::Sqlite {
        let c = rusqlite::Connection::open(&f.location).unwrap();
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode.to_lowercase(), "wal");
        let n: i64 = c
            .query_row("SELECT COUNT(*) FROM codestep_schema", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n as usize, store::migrate::SQLITE.len());
    }
}

/// What schema 7 added, taken away again (for tests that make an older store). The runs table is
/// dropped by those tests, with its columns.
const UNDO_SCHEMA_6: &str = "ALTER TABLE workspaces DROP COLUMN keep_run_io;
     ALTER TABLE fetch_attempts DROP COLUMN status_text; ALTER TABLE fetch_attempts DROP COLUMN error_excerpt;";

async fn older_schema_is_upgraded_in_place(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    store::create_connector(
        &*f.store,
        &vault,
        "w",
        &header_spec("c", "https://api.example.com"),
        &secret(SECRET_A),
        ACTOR,
    )
    .await
    .unwrap();
    // Make it a schema-1 store, as an older codestep left it.
    f.raw_exec(
        "DROP TABLE runs; DROP TABLE blocked_buckets; DROP TABLE fetch_buckets; DROP TABLE fetch_attempts;
         DROP TABLE api_tokens; ALTER TABLE audit_log DROP COLUMN address;
         ALTER TABLE workspaces DROP COLUMN keep_run_io;
         DELETE FROM codestep_schema WHERE version >= 2",
    )
    .await;
    let reopened = f.reopen().await;
    assert_eq!(
        reopened.schema_version().await.unwrap(),
        store::migrate::latest(store::migrate::SQLITE)
    );
    store::create_api_token(&*reopened, "w", "t", &all_scopes(), ACTOR)
        .await
        .unwrap();
    assert_eq!(decrypt(&f, &vault, "w", "c").await.unwrap(), SECRET_A);
}

async fn newer_schema_is_refused(b: Backend) {
    let f = fixture(b).await;
    f.store.create_workspace("keep", ACTOR).await.unwrap();
    f.raw_exec("INSERT INTO codestep_schema (version, name, applied_at) VALUES (999, 'from the future', 0)")
        .await;
    let err = match store::open(&f.location).await {
        Ok(_) => panic!("a store from a newer schema opened"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("schema version 999") && msg.contains("newer codestep"),
        "{msg}"
    );
    // It was left unchanged: the workspace is still there for a newer build.
    assert_eq!(f.store.list_workspaces().await.unwrap().len(), 1);
}

async fn workspaces_are_unique_ignoring_case(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("Acme", ACTOR).await.unwrap();
    assert_eq!(ws.name, "Acme");
    assert_eq!(ws.id.len(), 32);
    let err = f.store.create_workspace("acme", ACTOR).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("already exists"), "{err}");
    f.store.create_workspace("beta", ACTOR).await.unwrap();
    let names: Vec<String> = f
        .store
        .list_workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, vec!["Acme", "beta"]);
    assert_eq!(f.store.workspace("ACME").await.unwrap().id, ws.id);
    let err = f.store.workspace("nope").await.unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)) && err.to_string().contains("\"nope\" not found"),
        "{err}"
    );
    assert_eq!(f.store.delete_workspace("acme", ACTOR).await.unwrap(), 0);
    assert!(matches!(
        f.store.delete_workspace("acme", ACTOR).await,
        Err(StoreError::NotFound(_))
    ));
}

async fn connector_lifecycle_with_audit_trail(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store
        .create_workspace("w", &store::Actor::named("cli:alice"))
        .await
        .unwrap();
    let rec = store::create_connector(
        &*f.store,
        &vault,
        "w",
        &header_spec("Stripe", "https://api.stripe.com/v1/*"),
        &secret(SECRET_A),
        &store::Actor::named("cli:alice"),
    )
    .await
    .unwrap();
    assert_eq!(rec.name, "Stripe");
    assert_eq!(rec.workspace_name, "w");
    assert_eq!(rec.sealed.key_version, 1);
    assert_eq!(rec.created_at, rec.updated_at);
    let got = f.store.connector("w", "stripe").await.unwrap();
    assert_eq!(got, rec);
    assert_eq!(decrypt(&f, &vault, "w", "STRIPE").await.unwrap(), SECRET_A);
    assert_eq!(
        f.store.list_connectors("w").await.unwrap(),
        vec![rec.clone()]
    );

    store::update_connector(
        &*f.store,
        &vault,
        "w",
        "stripe",
        ConnectorUpdate {
            secrets: Some(secret(SECRET_B).into()),
            ..Default::default()
        },
        &store::Actor::named("token:t1"),
    )
    .await
    .unwrap();
    assert_eq!(decrypt(&f, &vault, "w", "stripe").await.unwrap(), SECRET_B);
    f.store
        .delete_connector("w", "STRIPE", &store::Actor::named("cli:bob"))
        .await
        .unwrap();
    let err = f.store.connector("w", "stripe").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("connector \"stripe\" not found in workspace \"w\""),
        "{err}"
    );
    assert!(matches!(
        f.store.delete_connector("w", "stripe", ACTOR).await,
        Err(StoreError::NotFound(_))
    ));

    let log = f.store.audit_log(Some("w"), None, 100).await.unwrap();
    let summary: Vec<(String, String, Option<String>)> = log
        .iter()
        .map(|e| (e.actor.clone(), e.action.clone(), e.connector.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "cli:bob".to_string(),
                "connector.delete".to_string(),
                Some("Stripe".to_string())
            ),
            (
                "token:t1".to_string(),
                "connector.update".to_string(),
                Some("Stripe".to_string())
            ),
            (
                "cli:alice".to_string(),
                "connector.create".to_string(),
                Some("Stripe".to_string())
            ),
            (
                "cli:alice".to_string(),
                "workspace.create".to_string(),
                None
            ),
        ]
    );
    assert_eq!(log[1].detail, "changed: secret");
    assert!(log.windows(2).all(|w| w[0].at >= w[1].at));
    for e in &log {
        no_secret_in(&format!("{e:?}"));
    }
}

async fn connector_names_are_unique_per_workspace_ignoring_case(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("a", ACTOR).await.unwrap();
    f.store.create_workspace("b", ACTOR).await.unwrap();
    store::create_connector(
        &*f.store,
        &vault,
        "a",
        &header_spec("GitHub", "https://api.github.com"),
        &secret(SECRET_A),
        ACTOR,
    )
    .await
    .unwrap();
    let err = store::create_connector(
        &*f.store,
        &vault,
        "a",
        &header_spec("github", "https://api.github.com"),
        &secret(SECRET_B),
        ACTOR,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("already exists in workspace \"a\""),
        "{err}"
    );
    no_secret_in(&err.to_string());
    // The same name in another workspace is fine.
    store::create_connector(
        &*f.store,
        &vault,
        "b",
        &header_spec("GITHUB", "https://api.github.com"),
        &secret(SECRET_B),
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!(decrypt(&f, &vault, "a", "github").await.unwrap(), SECRET_A);
    assert_eq!(decrypt(&f, &vault, "b", "github").await.unwrap(), SECRET_B);
    assert_eq!(f.store.list_connectors("a").await.unwrap().len(), 1);
}

async fn update_touches_only_what_is_given(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    let orig = store::create_connector(
        &*f.store,
        &vault,
        "w",
        &header_spec("api", "https://api.example.com/v1/*"),
        &secret(SECRET_A),
        ACTOR,
    )
    .await
    .unwrap();

    // Where the secret goes changes only with the secret in the same request (security model, "Who
    // decides where a secret goes"); refused, the connector is left as it was.
    for refused in [
        ConnectorUpdate {
            patterns: Some(vec!["https://attacker.example/*".into()]),
            ..Default::default()
        },
        ConnectorUpdate {
            placement: Some(Placement::query("k".into())),
            ..Default::default()
        },
    ] {
        let err = store::update_connector(&*f.store, &vault, "w", "api", refused, ACTOR)
            .await
            .unwrap_err();
        assert!(
            matches!(&err, store::StoreError::Invalid(e) if e.field.as_deref() == Some("secret")),
            "{err}"
        );
    }
    assert_eq!(f.store.connector("w", "api").await.unwrap(), orig);

    let after_patterns = store::update_connector(
        &*f.store,
        &vault,
        "w",
        "api",
        ConnectorUpdate {
            patterns: Some(vec![
                "https://api.example.com/v2/*".into(),
                "https://*.example.org".into(),
            ]),
            secrets: Some(secret(SECRET_A).into()),
            ..Default::default()
        },
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!(after_patterns.patterns.len(), 2);
    assert_eq!(after_patterns.placement, orig.placement);
    assert_eq!(decrypt(&f, &vault, "w", "api").await.unwrap(), SECRET_A);
    assert!(after_patterns.updated_at > orig.updated_at);
    assert_eq!(after_patterns.created_at, orig.created_at);

    let q = Placement::query("api_key".into());
    let after_placement = store::update_connector(
        &*f.store,
        &vault,
        "w",
        "api",
        ConnectorUpdate {
            placement: Some(q.clone()),
            scrub_echo: Some(true),
            secrets: Some(secret(SECRET_A).into()),
            ..Default::default()
        },
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!(after_placement.placement, q);
    assert!(after_placement.scrub_echo);
    assert_eq!(after_placement.patterns, after_patterns.patterns);
    // Turning scrubbing on needs nothing more; turning it off re-points nothing but needs the secret.
    let off = store::update_connector(
        &*f.store,
        &vault,
        "w",
        "api",
        ConnectorUpdate {
            scrub_echo: Some(false),
            ..Default::default()
        },
        ACTOR,
    )
    .await
    .unwrap_err();
    assert!(off.to_string().contains("needs its secret again"), "{off}");

    let after_secret = store::update_connector(
        &*f.store,
        &vault,
        "w",
        "api",
        ConnectorUpdate {
            secrets: Some(secret(SECRET_C).into()),
            ..Default::default()
        },
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!(after_secret.patterns, after_patterns.patterns);
    assert_eq!(after_secret.placement, q);
    assert_ne!(after_secret.sealed, after_placement.sealed);
    assert_eq!(decrypt(&f, &vault, "w", "api").await.unwrap(), SECRET_C);

    let err = store::update_connector(
        &*f.store,
        &vault,
        "w",
        "api",
        ConnectorUpdate::default(),
        ACTOR,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("nothing to change"), "{err}");
    let details: Vec<String> = f
        .store
        .audit_log(Some("w"), None, 3)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        details,
        vec![
            "changed: secret",
            "changed: placement, scrub_echo, secret",
            "changed: patterns, secret"
        ]
    );
}

async fn persistence_across_reopen(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    for (name, s) in [("one", SECRET_A), ("two", SECRET_B)] {
        store::create_connector(
            &*f.store,
            &vault,
            "w",
            &header_spec(name, "https://api.example.com"),
            &secret(s),
            ACTOR,
        )
        .await
        .unwrap();
    }
    let before = f.store.list_connectors("w").await.unwrap();
    drop(f.store.clone());
    let reopened = f.reopen().await;
    assert_eq!(reopened.list_connectors("w").await.unwrap(), before);
    // A different vault object with the same key material opens them (as a new process would).
    let vault2 = vault_with(&[(1, 1)]);
    let loaded =
        store::load_step_connectors(&*reopened, &vault2, "w", &["two".into(), "one".into()])
            .await
            .unwrap();
    assert_eq!(loaded[0].secret("secret").unwrap().expose(), SECRET_B);
    assert_eq!(loaded[1].secret("secret").unwrap().expose(), SECRET_A);
}

async fn tamper_bit_flip_and_truncation(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    let rec = store::create_connector(
        &*f.store,
        &vault,
        "w",
        &header_spec("c", "https://api.example.com"),
        &secret(SECRET_A),
        ACTOR,
    )
    .await
    .unwrap();
    let sealed = rec.sealed.clone();

    let mut flipped = sealed.ciphertext.clone();
    flipped[3] ^= 0x01;
    f.raw_set_secret(&rec.id, &flipped, &sealed.nonce, 1).await;
    let err = decrypt(&f, &vault, "w", "c").await.unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            StoreError::Vault {
                source: VaultError::Authentication,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("failed authentication") && msg.contains("connector \"c\""),
        "{msg}"
    );
    no_secret_in(&msg);

    let mut nonce = sealed.nonce.clone();
    nonce[0] ^= 0x80;
    f.raw_set_secret(&rec.id, &sealed.ciphertext, &nonce, 1)
        .await;
    assert!(decrypt(&f, &vault, "w", "c")
        .await
        .unwrap_err()
        .to_string()
        .contains("failed authentication"));

    f.raw_set_secret(&rec.id, &sealed.ciphertext[..10], &sealed.nonce, 1)
        .await;
    let msg = decrypt(&f, &vault, "w", "c").await.unwrap_err().to_string();
    assert!(msg.contains("truncated"), "{msg}");

    f.raw_set_secret(
        &rec.id,
        &sealed.ciphertext[..sealed.ciphertext.len() - 1],
        &sealed.nonce,
        1,
    )
    .await;
    assert!(decrypt(&f, &vault, "w", "c")
        .await
        .unwrap_err()
        .to_string()
        .contains("failed authentication"));

    // Restored, it decrypts again: the errors came from the data, not from a broken store.
    f.raw_set_secret(&rec.id, &sealed.ciphertext, &sealed.nonce, 1)
        .await;
    assert_eq!(decrypt(&f, &vault, "w", "c").await.unwrap(), SECRET_A);
}

async fn tamper_row_swap(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w1", ACTOR).await.unwrap();
    f.store.create_workspace("w2", ACTOR).await.unwrap();
    let a = store::create_connector(
        &*f.store,
        &vault,
        "w1",
        &header_spec("a", "https://a.example.com"),
        &secret(SECRET_A),
        ACTOR,
    )
    .await
    .unwrap();
    let bb = store::create_connector(
        &*f.store,
        &vault,
        "w1",
        &header_spec("b", "https://b.example.com"),
        &secret(SECRET_B),
        ACTOR,
    )
    .await
    .unwrap();
    let c = store::create_connector(
        &*f.store,
        &vault,
        "w2",
        &header_spec("a", "https://a.example.com"),
        &secret(SECRET_C),
        ACTOR,
    )
    .await
    .unwrap();

    // Swap between two connectors of one workspace.
    f.raw_set_secret(&a.id, &bb.sealed.ciphertext, &bb.sealed.nonce, 1)
        .await;
    f.raw_set_secret(&bb.id, &a.sealed.ciphertext, &a.sealed.nonce, 1)
        .await;
    for name in ["a", "b"] {
        let msg = decrypt(&f, &vault, "w1", name)
            .await
            .unwrap_err()
            .to_string();
        assert!(msg.contains("moved from another row"), "{msg}");
        no_secret_in(&msg);
    }
    // Copy across workspaces, to a connector of the same name.
    f.raw_set_secret(&a.id, &a.sealed.ciphertext, &a.sealed.nonce, 1)
        .await;
    f.raw_set_secret(&c.id, &a.sealed.ciphertext, &a.sealed.nonce, 1)
        .await;
    assert_eq!(decrypt(&f, &vault, "w1", "a").await.unwrap(), SECRET_A);
    let msg = decrypt(&f, &vault, "w2", "a")
        .await
        .unwrap_err()
        .to_string();
    assert!(msg.contains("failed authentication"), "{msg}");
    no_secret_in(&msg);
}

async fn tamper_wrong_key_version(b: Backend) {
    let f = fixture(b).await;
    let v1 = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    let rec = store::create_connector(
        &*f.store,
        &v1,
        "w",
        &header_spec("c", "https://api.example.com"),
        &secret(SECRET_A),
        ACTOR,
    )
    .await
    .unwrap();
    let v12 = vault_with(&[(1, 1), (2, 2)]);
    // Relabelled to another version the vault has: the version is in the associated data.
    f.raw_set_secret(&rec.id, &rec.sealed.ciphertext, &rec.sealed.nonce, 2)
        .await;
    let msg = decrypt(&f, &v12, "w", "c").await.unwrap_err().to_string();
    assert!(msg.contains("failed authentication"), "{msg}");
    // Relabelled to a version nobody has.
    f.raw_set_secret(&rec.id, &rec.sealed.ciphertext, &rec.sealed.nonce, 9)
        .await;
    let err = decrypt(&f, &v12, "w", "c").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Vault {
                source: VaultError::UnknownKeyVersion { version: 9, .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("version 9"), "{err}");
}

async fn wrong_master_key_is_reported(b: Backend) {
    let f = fixture(b).await;
    let right = vault_with(&[(1, 1)]);
    let wrong = vault_with(&[(1, 99)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    store::create_connector(
        &*f.store,
        &right,
        "w",
        &header_spec("c", "https://api.example.com"),
        &secret(SECRET_A),
        ACTOR,
    )
    .await
    .unwrap();
    let err = decrypt(&f, &wrong, "w", "c").await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Vault {
                source: VaultError::WrongMasterKey { version: 1, .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("not the key this store's secrets were encrypted with"),
        "{err}"
    );
    // Sealing a new secret with the wrong key is refused, so one version never means two keys.
    let err = store::create_connector(
        &*f.store,
        &wrong,
        "w",
        &header_spec("d", "https://api.example.com"),
        &secret(SECRET_B),
        ACTOR,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Vault {
                source: VaultError::WrongMasterKey { .. },
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        f.store.connector("w", "d").await,
        Err(StoreError::NotFound(_))
    ));
    // So is rotating with it.
    let err = store::rotate_keys(&*f.store, &wrong, ACTOR, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refusing to rotate"), "{err}");
    assert_eq!(decrypt(&f, &right, "w", "c").await.unwrap(), SECRET_A);
}

async fn seed_three(f: &Fixture, vault: &Vault) {
    f.store.create_workspace("w1", ACTOR).await.unwrap();
    f.store.create_workspace("w2", ACTOR).await.unwrap();
    for (ws, name, s) in [
        ("w1", "a", SECRET_A),
        ("w1", "b", SECRET_B),
        ("w2", "c", SECRET_C),
    ] {
        store::create_connector(
            &*f.store,
            vault,
            ws,
            &header_spec(name, "https://api.example.com"),
            &secret(s),
            ACTOR,
        )
        .await
        .unwrap();
    }
}

async fn assert_all_decrypt(f: &Fixture, vault: &Vault, version: Option<u32>) {
    for (ws, name, s) in [
        ("w1", "a", SECRET_A),
        ("w1", "b", SECRET_B),
        ("w2", "c", SECRET_C),
    ] {
        let rec = f.store.connector(ws, name).await.unwrap();
        if let Some(v) = version {
            assert_eq!(rec.sealed.key_version, v, "{ws}/{name}");
        }
        let got = store::decrypt_secret(&*f.store, vault, &rec)
            .await
            .unwrap_or_else(|e| panic!("{ws}/{name}: {e}"));
        assert!(
            got.expose() == s,
            "{ws}/{name} decrypted to a different secret"
        );
    }
}

async fn rotation_reencrypts_every_secret(b: Backend) {
    let f = fixture(b).await;
    let key_file = f.dir.path().join("master.key");
    let v1 = Vault::load_file(&key_file, true).unwrap().vault;
    seed_three(&f, &v1).await;
    let before: Vec<_> = f.store.list_connectors("w1").await.unwrap();

    let (v2, report) = store::rotate_keys(&*f.store, &v1, &store::Actor::named("cli:ops"), None)
        .await
        .unwrap();
    assert_eq!(
        report,
        store::RotationReport {
            added_version: true,
            version: 2,
            reencrypted: 3,
            runs_reencrypted: 0
        }
    );
    assert_eq!(v2.versions(), vec![1, 2]);
    assert_all_decrypt(&f, &v2, Some(2)).await;
    let after: Vec<_> = f.store.list_connectors("w1").await.unwrap();
    for (x, y) in before.iter().zip(&after) {
        assert_ne!(x.sealed.nonce, y.sealed.nonce);
        assert_eq!(x.patterns, y.patterns);
        assert_eq!(
            x.updated_at, y.updated_at,
            "rotation is not a connector change"
        );
    }
    // A process that reloads the key file sees both versions; one holding only the old key cannot open.
    let reloaded = Vault::load_file(&key_file, false).unwrap().vault;
    assert_eq!(reloaded.versions(), vec![1, 2]);
    assert_all_decrypt(&f, &reloaded, Some(2)).await;
    let msg = decrypt(&f, &v1, "w1", "a").await.unwrap_err().to_string();
    assert!(msg.contains("version 2"), "{msg}");
    let log = f.store.audit_log(None, None, 1).await.unwrap();
    assert_eq!(log[0].action, "key.rotate");
    assert_eq!(log[0].actor, "cli:ops");
    assert!(
        log[0]
            .detail
            .contains("3 secret(s) re-encrypted with key version 2"),
        "{}",
        log[0].detail
    );

    // Rotating again moves to version 3.
    let (v3, report) =
        store::rotate_keys(&*f.store, &reloaded, &store::Actor::named("cli:ops"), None)
            .await
            .unwrap();
    assert_eq!(report.version, 3);
    assert_all_decrypt(&f, &v3, Some(3)).await;
}

async fn interrupted_rotation_keeps_every_secret_readable(b: Backend) {
    let f = fixture(b).await;
    let key_file = f.dir.path().join("master.key");
    let v1 = Vault::load_file(&key_file, true).unwrap().vault;
    seed_three(&f, &v1).await;

    // The re-encryption fails after one secret: the transaction rolls back.
    let err = store::rotate_keys(&*f.store, &v1, ACTOR, Some(1))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("interrupted"), "{err}");
    // The key file already has version 2, and still version 1: every secret still decrypts, with
    // the old vault and with a reloaded one.
    let reloaded = Vault::load_file(&key_file, false).unwrap().vault;
    assert_eq!(reloaded.versions(), vec![1, 2]);
    assert_all_decrypt(&f, &reloaded, Some(1)).await;
    assert_all_decrypt(&f, &v1, Some(1)).await;
    assert!(f
        .store
        .audit_log(None, None, 10)
        .await
        .unwrap()
        .iter()
        .all(|e| e.action != "key.rotate"));

    // Also the state a crash between connectors could leave if rotation were per row (mixed versions):
    // everything decrypts as long as the key file keeps the old versions.
    let rec = f.store.connector("w1", "a").await.unwrap();
    let resealed = reloaded
        .reseal(
            &codestep::vault::SecretContext {
                workspace_id: &rec.workspace_id,
                connector_id: &rec.id,
            },
            &rec.sealed,
        )
        .unwrap();
    f.raw_set_secret(
        &rec.id,
        &resealed.ciphertext,
        &resealed.nonce,
        resealed.key_version,
    )
    .await;
    assert_all_decrypt(&f, &reloaded, None).await;

    // Running the rotation again completes.
    let (v3, report) = store::rotate_keys(&*f.store, &reloaded, ACTOR, None)
        .await
        .unwrap();
    assert_eq!((report.version, report.reencrypted), (3, 3));
    assert_all_decrypt(&f, &v3, Some(3)).await;
}

async fn rotation_with_env_style_keys(b: Backend) {
    let f = fixture(b).await;
    let v1 = vault_with(&[(1, 1)]);
    seed_three(&f, &v1).await;
    // The operator adds version 2 to CODESTEP_MASTER_KEY (keeping 1), then rotates.
    let v12 = vault_with(&[(1, 1), (2, 2)]);
    let (v, report) = store::rotate_keys(&*f.store, &v12, ACTOR, None)
        .await
        .unwrap();
    assert_eq!(
        report,
        store::RotationReport {
            added_version: false,
            version: 2,
            reencrypted: 3,
            runs_reencrypted: 0
        }
    );
    assert_all_decrypt(&f, &v, Some(2)).await;
    // Version 1 can now be dropped from the variable.
    assert_all_decrypt(&f, &vault_with(&[(2, 2)]), Some(2)).await;
}

async fn concurrent_creates_never_lose_or_duplicate(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    // Two independent store handles (two connections), racing over overlapping names.
    let s1 = f.reopen().await;
    let s2 = f.reopen().await;
    let names: Vec<String> = (0..30).map(|i| format!("conn-{i}")).collect();
    let run = |s: Arc<dyn Store>, names: Vec<String>, v: Vault, upper: bool| {
        tokio::spawn(async move {
            let mut created = Vec::new();
            for n in names {
                let n = if upper { n.to_uppercase() } else { n };
                match store::create_connector(
                    &*s,
                    &v,
                    "w",
                    &header_spec(&n, "https://api.example.com"),
                    &secret(SECRET_A),
                    ACTOR,
                )
                .await
                {
                    Ok(_) => created.push(n.to_lowercase()),
                    Err(StoreError::Conflict(_)) => {}
                    Err(e) => panic!("unexpected error: {e}"),
                }
            }
            created
        })
    };
    let mut rev = names.clone();
    rev.reverse();
    let (a, c) = tokio::join!(
        run(s1, names.clone(), vault.clone(), false),
        run(s2, rev, vault.clone(), true)
    );
    let (a, c) = (a.unwrap(), c.unwrap());
    assert_eq!(
        a.len() + c.len(),
        names.len(),
        "every name created exactly once"
    );
    let mut listed: Vec<String> = f
        .store
        .list_connectors("w")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.name.to_lowercase())
        .collect();
    listed.sort();
    let mut expected = names.clone();
    expected.sort();
    assert_eq!(listed, expected);
    for n in &names {
        assert_eq!(decrypt(&f, &vault, "w", n).await.unwrap(), SECRET_A);
    }
}

async fn load_step_connectors_keeps_order_and_rejects_unknown(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    for (name, s) in [("alpha", SECRET_A), ("beta", SECRET_B), ("gamma", SECRET_C)] {
        store::create_connector(
            &*f.store,
            &vault,
            "w",
            &header_spec(name, &format!("https://{name}.example.com")),
            &secret(s),
            ACTOR,
        )
        .await
        .unwrap();
    }
    let names: Vec<String> = vec!["gamma".into(), "ALPHA".into(), "beta".into()];
    let loaded = store::load_step_connectors(&*f.store, &vault, "w", &names)
        .await
        .unwrap();
    let got: Vec<(&str, &str)> = loaded
        .iter()
        .map(|c| (c.name.as_str(), c.secret("secret").unwrap().expose()))
        .collect();
    assert_eq!(
        got,
        vec![("gamma", SECRET_C), ("alpha", SECRET_A), ("beta", SECRET_B)]
    );
    assert!(store::load_step_connectors(&*f.store, &vault, "w", &[])
        .await
        .unwrap()
        .is_empty());

    let err = store::load_step_connectors(&*f.store, &vault, "w", &["alpha".into(), "nope".into()])
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("connector \"nope\" not found in workspace \"w\""),
        "{err}"
    );
    let err =
        store::load_step_connectors(&*f.store, &vault, "w", &["alpha".into(), "Alpha".into()])
            .await
            .unwrap_err();
    assert!(err.to_string().contains("more than once"), "{err}");
    let err = store::load_step_connectors(&*f.store, &vault, "nows", &["alpha".into()])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("workspace \"nows\" not found"),
        "{err}"
    );
}

async fn deleting_a_workspace_deletes_its_connectors(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    seed_three(&f, &vault).await;
    assert_eq!(f.store.delete_workspace("W1", ACTOR).await.unwrap(), 2);
    assert!(matches!(
        f.store.list_connectors("w1").await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(f.store.list_connectors("w2").await.unwrap().len(), 1);
    // A new workspace of the same name starts empty.
    f.store.create_workspace("w1", ACTOR).await.unwrap();
    assert!(f.store.list_connectors("w1").await.unwrap().is_empty());
    let log = f.store.audit_log(None, None, 100).await.unwrap();
    assert!(log
        .iter()
        .any(|e| e.action == "workspace.delete" && e.detail.contains("2 connector(s)")));
    assert_eq!(
        log.iter()
            .filter(|e| e.action == "connector.create")
            .count(),
        3,
        "audit entries outlive deletions"
    );
}

async fn invalid_input_names_field_and_rule(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    let mut bad = header_spec("c", "http://api.example.com");
    let err = store::create_connector(&*f.store, &vault, "w", &bad, &secret(SECRET_A), ACTOR)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("https"), "{err}");
    bad.patterns = vec!["https://api.example.com".into()];
    let err = store::create_connector(&*f.store, &vault, "w", &bad, &secret("line\nbreak"), ACTOR)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err:?}");
    assert!(err.to_string().contains("secret"), "{err}");
    assert!(!err.to_string().contains("line\nbreak"));
    assert!(f.store.list_connectors("w").await.unwrap().is_empty());
    for bad_name in ["", "-x", "has space", "x/y", &"a".repeat(65)] {
        let err = store::validate_workspace_name(bad_name)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("workspace: ") && err.contains("1 to 64 characters"),
            "{err}"
        );
    }
    store::validate_workspace_name("Acme.prod_1-x").unwrap();
}

async fn api_tokens_are_stored_hashed(b: Backend) {
    let f = fixture(b).await;
    f.store.create_workspace("w", ACTOR).await.unwrap();
    f.store.create_workspace("other", ACTOR).await.unwrap();
    let (token, rec) = store::create_api_token(
        &*f.store,
        "w",
        "ci",
        &all_scopes(),
        &store::Actor::named("cli:alice"),
    )
    .await
    .unwrap();
    assert!(token.expose().starts_with("cst_") && token.expose().len() == 47);
    assert_eq!(format!("{token:?}"), "[redacted]");
    assert_eq!(
        (rec.name.as_str(), rec.workspace_name.as_str()),
        ("ci", "w")
    );
    assert!(rec.last_used_at.is_none() && rec.revoked_at.is_none());

    let found = f
        .store
        .authenticate_api_token(&store::hash_api_token(token.expose()))
        .await
        .unwrap()
        .expect("token found");
    assert_eq!(found.id, rec.id);
    assert!(found.last_used_at.is_some());
    assert!(f
        .store
        .authenticate_api_token(&store::hash_api_token("cst_wrong"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(f.store.list_api_tokens("W").await.unwrap().len(), 1);
    assert!(f.store.list_api_tokens("other").await.unwrap().is_empty());

    // Only the hash is in the database.
    match b {
        Backend::Sqlite => {
            let raw = std::fs::read(&f.location).unwrap();
            let wal = std::fs::read(format!("{}-wal", f.location)).unwrap_or_default();
            for bytes in [raw, wal] {
                assert!(
                    !bytes
                        .windows(token.expose().len())
                        .any(|w| w == token.expose().as_bytes()),
                    "token stored in clear"
                );
            }
        }
        Backend::Postgres => {
            let rows = f
                .pg_client()
                .await
                .query("SELECT token_hash FROM api_tokens", &[])
                .await
                .unwrap();
            let stored: Vec<u8> = rows[0].get(0);
            assert_eq!(stored, store::hash_api_token(token.expose()));
        }
    }

    let err = f
        .store
        .revoke_api_token("other", &rec.id, ACTOR)
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::NotFound(_)),
        "a token is revoked only through its own workspace"
    );
    f.store
        .revoke_api_token("w", &rec.id, &store::Actor::named("cli:bob"))
        .await
        .unwrap();
    assert!(f
        .store
        .authenticate_api_token(&store::hash_api_token(token.expose()))
        .await
        .unwrap()
        .is_none());
    assert!(f.store.list_api_tokens("w").await.unwrap()[0]
        .revoked_at
        .is_some());
    let actions: Vec<String> = f
        .store
        .audit_log(Some("w"), None, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, vec!["token.revoke", "token.create"]);
    let err = store::create_api_token(&*f.store, "w", "", &all_scopes(), ACTOR)
        .await
        .unwrap_err();
    assert!(err.to_string().starts_with("token name:"), "{err}");
}

async fn fetch_attempts_roundtrip(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let ok = store::FetchAttempt {
        at_ms: 1_700_000_000_000,
        run_id: Some("run-1".into()),
        connector: Some("stripe".into()),
        method: "GET".into(),
        host: "api.stripe.com".into(),
        path: "/v1/charges".into(),
        status: Some(200),
        error: None,
        blocked: false,
        redirects: 1,
        status_text: None,
        error_excerpt: None,
        duration_ms: 12.5,
    };
    let blocked = store::FetchAttempt {
        connector: None,
        host: "evil.test".into(),
        path: "/".into(),
        status: None,
        error: Some("blocked".into()),
        blocked: true,
        redirects: 0,
        ..ok.clone()
    };
    f.store
        .record_fetch_attempts(Some(&ws.id), &[ok.clone(), blocked.clone()])
        .await
        .unwrap();
    f.store
        .record_fetch_attempts(None, std::slice::from_ref(&ok))
        .await
        .unwrap();
    let got = f.store.fetch_attempts("w", 10).await.unwrap();
    assert_eq!(got, vec![blocked, ok]);
    assert_eq!(f.store.fetch_attempts("w", 1).await.unwrap().len(), 1);
}

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A fetch attempt at `at` through `connector` that got `status`, or failed with error kind `error`.
fn attempt(
    at: i64,
    connector: Option<&str>,
    status: Option<u16>,
    error: Option<&str>,
) -> FetchAttempt {
    FetchAttempt {
        at_ms: at,
        run_id: Some("run".into()),
        connector: connector.map(str::to_string),
        method: "GET".into(),
        host: "api.example.com".into(),
        path: "/v1/things".into(),
        status,
        error: error.map(str::to_string),
        blocked: false,
        redirects: 0,
        status_text: None,
        error_excerpt: None,
        duration_ms: 3.0,
    }
}

fn ok_at(at: i64, c: &str) -> FetchAttempt {
    attempt(at, Some(c), Some(200), None)
}

fn status_at(at: i64, c: &str, status: u16) -> FetchAttempt {
    attempt(at, Some(c), Some(status), None)
}

fn failed_at(at: i64, c: &str, kind: &str) -> FetchAttempt {
    attempt(at, Some(c), None, Some(kind))
}

fn blocked_at(at: i64) -> FetchAttempt {
    FetchAttempt {
        host: "evil.test".into(),
        blocked: true,
        ..attempt(at, None, None, Some("blocked"))
    }
}

fn counts(requests: u64, errors: u64) -> Counts {
    Counts { requests, errors }
}

/// Every page of the log for `q`, following the cursor; checks the pages link up.
async fn all_pages(s: &dyn Store, ws: &str, q: &FetchLogQuery) -> Vec<store::FetchLogEntry> {
    let mut q = q.clone();
    let mut out: Vec<store::FetchLogEntry> = Vec::new();
    for _ in 0..1000 {
        let page = s.fetch_log(ws, &q).await.unwrap();
        assert!(page.items.len() <= q.page_size() as usize);
        if let Some(next) = page.next {
            assert_eq!(
                page.items.len(),
                q.page_size() as usize,
                "only the last page is short"
            );
            assert_eq!(Some(next), page.items.last().map(|e| e.id));
        }
        out.extend(page.items);
        match page.next {
            Some(next) => q.before = Some(next),
            None => {
                assert!(
                    out.windows(2).all(|w| w[0].id > w[1].id),
                    "newest first, no entry twice"
                );
                return out;
            }
        }
    }
    panic!("the log never ends");
}

#[test]
fn outcomes_are_derived_from_the_record() {
    let at = 0;
    let cases = [
        (ok_at(at, "c"), Outcome::Ok),
        (status_at(at, "c", 302), Outcome::Ok),
        (status_at(at, "c", 399), Outcome::Ok),
        (status_at(at, "c", 400), Outcome::HttpError),
        (status_at(at, "c", 503), Outcome::HttpError),
        (failed_at(at, "c", "timeout"), Outcome::Timeout),
        (failed_at(at, "c", "network_error"), Outcome::NetworkError),
        (failed_at(at, "c", "limit"), Outcome::NetworkError),
        (
            failed_at(at, "c", "redirect_refused"),
            Outcome::NetworkError,
        ),
        (attempt(at, Some("c"), None, None), Outcome::NetworkError),
        (blocked_at(at), Outcome::Blocked),
    ];
    for (a, want) in cases {
        assert_eq!(a.outcome(), want, "{a:?}");
    }
    // A response body over the limit after the status came back is a failed request, not an ok.
    assert_eq!(
        attempt(at, Some("c"), Some(200), Some("limit")).outcome(),
        Outcome::NetworkError
    );
    for o in Outcome::ALL {
        assert_eq!(o.as_str().parse::<Outcome>().unwrap(), o);
        assert_eq!(
            serde_json::to_value(o).unwrap(),
            serde_json::json!(o.as_str())
        );
        assert_eq!(o.is_error(), Outcome::ERRORS.contains(&o));
    }
    assert_eq!(
        serde_json::from_str::<Outcome>("\"network_error\"").unwrap(),
        Outcome::NetworkError
    );
    let err = "nope".parse::<Outcome>().unwrap_err().to_string();
    assert!(
        err.starts_with("outcome: ") && err.contains("http_error"),
        "{err}"
    );
    assert!(!Outcome::Blocked.is_error() && !Outcome::Ok.is_error());
    // from_record keeps every field, the start time included.
    let rec = codestep::egress::FetchRecord {
        at_ms: 1_700_000_000_123,
        run_id: None,
        connector: Some("c".into()),
        method: "POST".into(),
        host: "h".into(),
        path: "/p".into(),
        status: Some(500),
        error: None,
        duration_ms: 1.5,
        blocked: false,
        redirects: 2,
        status_text: None,
        error_excerpt: None,
    };
    let a = FetchAttempt::from_record(&rec, Some("r1"));
    assert_eq!(a.at_ms, 1_700_000_000_123);
    assert_eq!(a.outcome(), Outcome::HttpError);
    assert_eq!((a.run_id.as_deref(), a.redirects), (Some("r1"), 2));
}

#[test]
fn the_window_starts_after_the_minute_holding_since() {
    assert_eq!(store::window_start(0), MIN);
    assert_eq!(store::window_start(59_999), MIN);
    assert_eq!(store::window_start(MIN), 2 * MIN);
    assert_eq!(store::window_start(-1), 0);
    let map: HashMap<String, Counts> = [("Stripe".to_string(), counts(3, 1))].into();
    assert_eq!(store::counts_for(&map, "Stripe"), counts(3, 1));
    assert_eq!(store::counts_for(&map, "STRIPE"), counts(3, 1));
    assert_eq!(store::counts_for(&map, "other"), counts(0, 0));
    assert!(counts(1, 1).alert() && !counts(5, 0).alert());
    let q = FetchLogQuery::default();
    assert_eq!(q.page_size(), store::FETCH_LOG_DEFAULT_LIMIT);
    let q = FetchLogQuery {
        limit: 1_000_000,
        ..q
    };
    assert_eq!(q.page_size(), store::FETCH_LOG_MAX_LIMIT);
}

async fn monitoring_counts_are_rolling_24_hours(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let now = now_ms();
    let attempts = vec![
        // Outside the window: never counted.
        ok_at(now - 25 * HOUR, "stripe"),
        status_at(now - 25 * HOUR, "stripe", 500),
        ok_at(now - 24 * HOUR - 2 * MIN, "stripe"),
        // Inside.
        ok_at(now - 23 * HOUR, "stripe"),
        ok_at(now - 24 * HOUR + 2 * MIN, "stripe"),
        status_at(now - 12 * HOUR, "stripe", 404),
        status_at(now - 2 * HOUR, "stripe", 399),
        failed_at(now - HOUR, "stripe", "timeout"),
        failed_at(now - MIN, "stripe", "network_error"),
        ok_at(now, "stripe"),
        ok_at(now - 3 * HOUR, "github"),
        ok_at(now - 3 * HOUR, "github"),
        status_at(now - 30 * HOUR, "github", 500),
        // Without a connector (not blocked): not any connector's.
        attempt(now - HOUR, None, Some(200), None),
        // Blocked by policy: counted apart, never as an error.
        blocked_at(now - HOUR),
        blocked_at(now - 5 * MIN),
        blocked_at(now - 26 * HOUR),
    ];
    // Recorded over several runs, out of time order.
    for chunk in attempts.chunks(4).rev() {
        f.store
            .record_fetch_attempts(Some(&ws.id), chunk)
            .await
            .unwrap();
    }
    let since = now - 24 * HOUR;
    let got = f.store.connector_counts("W", since).await.unwrap();
    let want: HashMap<String, Counts> = [
        ("stripe".to_string(), counts(7, 3)),
        ("github".to_string(), counts(2, 0)),
    ]
    .into();
    assert_eq!(got, want);
    assert!(got["stripe"].alert() && !got["github"].alert());
    assert_eq!(f.store.blocked_count("w", since).await.unwrap(), 2);
    // A wider window takes in the older attempts.
    let week = f
        .store
        .connector_counts("w", now - 7 * 24 * HOUR)
        .await
        .unwrap();
    assert_eq!(week["stripe"], counts(10, 4));
    assert_eq!(week["github"], counts(3, 1));
    assert_eq!(
        f.store
            .blocked_count("w", now - 7 * 24 * HOUR)
            .await
            .unwrap(),
        3
    );
    // A window in the future is empty.
    assert!(f
        .store
        .connector_counts("w", now + HOUR)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(f.store.blocked_count("w", now + HOUR).await.unwrap(), 0);

    // Names are recorded as given; spellings differing in case count together, under the latest.
    f.store
        .record_fetch_attempts(Some(&ws.id), &[status_at(now, "Stripe", 502)])
        .await
        .unwrap();
    let got = f.store.connector_counts("w", since).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(store::counts_for(&got, "stripe"), counts(8, 4));
    assert_eq!(store::counts_for(&got, "STRIPE"), counts(8, 4));
    assert_eq!(got.get("Stripe"), Some(&counts(8, 4)));

    // Attempts of no workspace (a CLI run) are kept but counted nowhere.
    f.store
        .record_fetch_attempts(None, &[status_at(now, "stripe", 500), blocked_at(now)])
        .await
        .unwrap();
    assert_eq!(
        store::counts_for(
            &f.store.connector_counts("w", since).await.unwrap(),
            "stripe"
        ),
        counts(8, 4)
    );
    assert_eq!(f.store.blocked_count("w", since).await.unwrap(), 2);
    // Recording nothing is fine.
    f.store
        .record_fetch_attempts(Some(&ws.id), &[])
        .await
        .unwrap();
    let err = f.store.connector_counts("nope", since).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let err = f.store.blocked_count("nope", since).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
}

async fn monitoring_series_is_dense_and_adds_up(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let now = now_ms();
    let attempts = vec![
        ok_at(now - 25 * HOUR, "stripe"),
        ok_at(now - 23 * HOUR - 30 * MIN, "stripe"),
        status_at(now - 23 * HOUR - 20 * MIN, "stripe", 500),
        ok_at(now - 5 * HOUR - 10 * MIN, "stripe"),
        failed_at(now - 2 * MIN, "stripe", "timeout"),
        ok_at(now, "stripe"),
        ok_at(now, "other"),
        blocked_at(now),
    ];
    f.store
        .record_fetch_attempts(Some(&ws.id), &attempts)
        .await
        .unwrap();
    let since = now - 24 * HOUR;
    let series = f
        .store
        .connector_series("w", "STRIPE", since, HOUR)
        .await
        .unwrap();
    // Exactly 24 hourly points (unless the clock crossed a minute meanwhile, which adds nothing).
    let n = series.len();
    assert!(n == 24 || n == 25, "{n} points");
    assert_eq!(series[0].start, store::window_start(since));
    assert!(series.windows(2).all(|w| w[1].start - w[0].start == HOUR));
    // The 24th point ends with the current minute (a 25th, if any, is the minute the clock crossed).
    let last = series[23];
    assert!(last.start <= now && now < last.start + HOUR);
    let total = series
        .iter()
        .fold((0, 0), |(r, e), p| (r + p.requests, e + p.errors));
    let c = store::counts_for(
        &f.store.connector_counts("w", since).await.unwrap(),
        "stripe",
    );
    assert_eq!(total, (c.requests, c.errors));
    assert_eq!(total, (5, 2));
    let point_of = |at: i64| {
        series
            .iter()
            .find(|p| p.start <= at && at < p.start + HOUR)
            .copied()
            .unwrap()
    };
    assert_eq!(point_of(now - 23 * HOUR - 30 * MIN).requests, 2);
    assert_eq!(point_of(now - 23 * HOUR - 30 * MIN).errors, 1);
    assert_eq!(point_of(now - 5 * HOUR - 10 * MIN).requests, 1);
    assert_eq!(point_of(now), point_of(now - 2 * MIN));
    assert_eq!((point_of(now).requests, point_of(now).errors), (2, 1));
    assert_eq!(
        series.iter().filter(|p| p.requests > 0).count(),
        3,
        "{series:?}"
    );

    // Minute points: as many as minutes in the window.
    let minutes = f
        .store
        .connector_series("w", "stripe", now - 10 * MIN, MIN)
        .await
        .unwrap();
    assert!(
        minutes.len() == 10 || minutes.len() == 11,
        "{}",
        minutes.len()
    );
    assert_eq!(minutes.iter().map(|p| p.requests).sum::<u64>(), 2);
    // A connector without requests: all zeros, still dense.
    let none = f
        .store
        .connector_series("w", "unknown", since, HOUR)
        .await
        .unwrap();
    assert_eq!(none.len(), n);
    assert!(none.iter().all(|p| p.requests == 0 && p.errors == 0));
    // Buckets must be whole minutes, and not absurdly many.
    for bad in [0, -MIN, 90_000] {
        let err = f
            .store
            .connector_series("w", "stripe", since, bad)
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Invalid(_)) && err.to_string().starts_with("bucket:"),
            "{err}"
        );
    }
    let err = f
        .store
        .connector_series("w", "stripe", now - 365 * 24 * HOUR, MIN)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = f
        .store
        .connector_series("nope", "stripe", since, HOUR)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

async fn monitoring_log_paginates_newest_first(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let now = now_ms();
    // 40 attempts of stripe (every third an error), 10 of github, 5 blocked, in runs of 5.
    let mut all = Vec::new();
    for i in 0..40i64 {
        let at = now - (40 - i) * MIN;
        all.push(match i % 3 {
            0 => status_at(at, "stripe", 500 + i as u16),
            _ => ok_at(at, "stripe"),
        });
        if i % 4 == 0 {
            all.push(ok_at(at, "github"));
        }
        if i % 8 == 0 {
            all.push(blocked_at(at));
        }
    }
    for run in all.chunks(5) {
        f.store
            .record_fetch_attempts(Some(&ws.id), run)
            .await
            .unwrap();
    }
    let expect = |pred: &dyn Fn(&FetchAttempt) -> bool| -> Vec<FetchAttempt> {
        all.iter().rev().filter(|a| pred(a)).cloned().collect()
    };
    let attempts = |entries: &[store::FetchLogEntry]| -> Vec<FetchAttempt> {
        entries.iter().map(|e| e.attempt.clone()).collect()
    };

    // Everything of the workspace, in pages of 7.
    let q = FetchLogQuery {
        limit: 7,
        ..Default::default()
    };
    let everything = all_pages(&*f.store, "w", &q).await;
    assert_eq!(attempts(&everything), expect(&|_| true));
    for e in &everything {
        assert_eq!(e.outcome, e.attempt.outcome());
    }
    // The error log of one connector, in pages of 4: exactly its errors, newest first.
    let q = FetchLogQuery {
        connector: Some("Stripe".into()),
        only_errors: true,
        limit: 4,
        ..Default::default()
    };
    let errors = all_pages(&*f.store, "w", &q).await;
    assert_eq!(errors.len(), 14);
    assert_eq!(
        attempts(&errors),
        expect(&|a| a.connector.as_deref() == Some("stripe") && a.status.unwrap_or(0) >= 500)
    );
    assert!(errors.iter().all(|e| e.outcome == Outcome::HttpError));
    // The first page and its cursor.
    let first = f.store.fetch_log("w", &q).await.unwrap();
    assert_eq!(first.items, errors[..4]);
    assert_eq!(first.next, Some(errors[3].id));
    // A page size that divides the total exactly ends with next = None, without an empty page.
    let q14 = FetchLogQuery {
        limit: 14,
        ..q.clone()
    };
    let page = f.store.fetch_log("w", &q14).await.unwrap();
    assert_eq!((page.items.len(), page.next), (14, None));
    let q7 = FetchLogQuery {
        limit: 7,
        ..q.clone()
    };
    let page = f.store.fetch_log("w", &q7).await.unwrap();
    let page2 = f
        .store
        .fetch_log(
            "w",
            &FetchLogQuery {
                before: page.next,
                ..q7.clone()
            },
        )
        .await
        .unwrap();
    assert_eq!((page2.items.len(), page2.next), (7, None));
    // Entries recorded after the first page was read do not shift the following pages.
    f.store
        .record_fetch_attempts(Some(&ws.id), &[status_at(now, "stripe", 500)])
        .await
        .unwrap();
    let page2_again = f
        .store
        .fetch_log(
            "w",
            &FetchLogQuery {
                before: page.next,
                ..q7
            },
        )
        .await
        .unwrap();
    assert_eq!(page2_again, page2);
    // The blocked list of the workspace, apart.
    let blocked = all_pages(
        &*f.store,
        "w",
        &FetchLogQuery {
            blocked_only: true,
            limit: 2,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(attempts(&blocked), expect(&|a| a.blocked));
    assert!(blocked.iter().all(|e| e.outcome == Outcome::Blocked));
    // The existing newest-first read still works.
    assert_eq!(f.store.fetch_attempts("w", 3).await.unwrap().len(), 3);
}

async fn monitoring_log_filters(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let t0 = now_ms() - 10 * HOUR;
    let at = |h: i64| t0 + h * HOUR;
    let all = vec![
        ok_at(at(0), "stripe"),
        status_at(at(1), "stripe", 404),
        failed_at(at(2), "stripe", "timeout"),
        failed_at(at(3), "stripe", "network_error"),
        status_at(at(4), "stripe", 503),
        failed_at(at(5), "stripe", "timeout"),
        ok_at(at(6), "stripe"),
        status_at(at(2), "github", 500),
        failed_at(at(3), "github", "timeout"),
        blocked_at(at(4)),
        attempt(at(5), None, None, Some("network_error")),
    ];
    f.store
        .record_fetch_attempts(Some(&ws.id), &all)
        .await
        .unwrap();
    let run = |q: FetchLogQuery| {
        let s = f.store.clone();
        async move {
            let mut q = q;
            q.limit = 100;
            s.fetch_log("w", &q)
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|e| {
                    (
                        e.attempt.connector.unwrap_or_default(),
                        e.attempt.at_ms,
                        e.outcome,
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let c = |name: &str| Some(name.to_string());
    use Outcome::{Blocked, HttpError, NetworkError, Timeout};
    // By outcome, for one connector.
    assert_eq!(
        run(FetchLogQuery {
            connector: c("stripe"),
            outcome: Some(Timeout),
            ..Default::default()
        })
        .await,
        vec![
            ("stripe".into(), at(5), Timeout),
            ("stripe".into(), at(2), Timeout)
        ]
    );
    assert_eq!(
        run(FetchLogQuery {
            connector: c("stripe"),
            outcome: Some(Outcome::Ok),
            ..Default::default()
        })
        .await,
        vec![
            ("stripe".into(), at(6), Outcome::Ok),
            ("stripe".into(), at(0), Outcome::Ok)
        ]
    );
    assert_eq!(
        run(FetchLogQuery {
            connector: c("STRIPE"),
            outcome: Some(HttpError),
            only_errors: true,
            ..Default::default()
        })
        .await,
        vec![
            ("stripe".into(), at(4), HttpError),
            ("stripe".into(), at(1), HttpError)
        ]
    );
    // By outcome across connectors; errors without a connector are errors too.
    assert_eq!(
        run(FetchLogQuery {
            outcome: Some(Timeout),
            ..Default::default()
        })
        .await,
        vec![
            ("github".into(), at(3), Timeout),
            ("stripe".into(), at(5), Timeout),
            ("stripe".into(), at(2), Timeout)
        ]
    );
    assert_eq!(
        run(FetchLogQuery {
            only_errors: true,
            ..Default::default()
        })
        .await
        .len(),
        8
    );
    assert_eq!(
        run(FetchLogQuery {
            outcome: Some(Blocked),
            ..Default::default()
        })
        .await,
        vec![(String::new(), at(4), Blocked)]
    );
    // By time range (inclusive), with and without a connector.
    assert_eq!(
        run(FetchLogQuery {
            connector: c("stripe"),
            only_errors: true,
            since: Some(at(2)),
            until: Some(at(4)),
            ..Default::default()
        })
        .await,
        vec![
            ("stripe".into(), at(4), HttpError),
            ("stripe".into(), at(3), NetworkError),
            ("stripe".into(), at(2), Timeout)
        ]
    );
    assert_eq!(
        run(FetchLogQuery {
            since: Some(at(5)),
            ..Default::default()
        })
        .await
        .len(),
        3
    );
    assert_eq!(
        run(FetchLogQuery {
            until: Some(at(0)),
            ..Default::default()
        })
        .await,
        vec![("stripe".into(), at(0), Outcome::Ok)]
    );
    assert!(run(FetchLogQuery {
        since: Some(at(7)),
        ..Default::default()
    })
    .await
    .is_empty());
    assert!(run(FetchLogQuery {
        since: Some(at(4)),
        until: Some(at(3)),
        ..Default::default()
    })
    .await
    .is_empty());
    // Filters combine with AND: a blocked request is never an error.
    assert!(run(FetchLogQuery {
        only_errors: true,
        blocked_only: true,
        ..Default::default()
    })
    .await
    .is_empty());
    assert!(run(FetchLogQuery {
        only_errors: true,
        outcome: Some(Outcome::Ok),
        ..Default::default()
    })
    .await
    .is_empty());
    assert!(run(FetchLogQuery {
        connector: c("nope"),
        ..Default::default()
    })
    .await
    .is_empty());
    // The cursor combines with the filters.
    assert_eq!(
        run(FetchLogQuery {
            connector: c("stripe"),
            only_errors: true,
            before: Some(i64::MAX),
            ..Default::default()
        })
        .await
        .len(),
        5
    );
    let err = f
        .store
        .fetch_log("nope", &FetchLogQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err}");
}

async fn monitoring_workspaces_are_isolated(b: Backend) {
    let f = fixture(b).await;
    let a = f.store.create_workspace("a", ACTOR).await.unwrap();
    let bw = f.store.create_workspace("b", ACTOR).await.unwrap();
    let now = now_ms();
    f.store
        .record_fetch_attempts(
            Some(&a.id),
            &[
                status_at(now, "stripe", 500),
                ok_at(now, "stripe"),
                blocked_at(now),
            ],
        )
        .await
        .unwrap();
    f.store
        .record_fetch_attempts(Some(&bw.id), &[ok_at(now, "stripe")])
        .await
        .unwrap();
    let since = now - 24 * HOUR;
    assert_eq!(
        f.store.connector_counts("a", since).await.unwrap()["stripe"],
        counts(2, 1)
    );
    assert_eq!(
        f.store.connector_counts("b", since).await.unwrap()["stripe"],
        counts(1, 0)
    );
    assert_eq!(f.store.blocked_count("a", since).await.unwrap(), 1);
    assert_eq!(f.store.blocked_count("b", since).await.unwrap(), 0);
    let series_b = f
        .store
        .connector_series("b", "stripe", since, HOUR)
        .await
        .unwrap();
    assert_eq!(
        series_b
            .iter()
            .map(|p| (p.requests, p.errors))
            .fold((0, 0), |x, y| (x.0 + y.0, x.1 + y.1)),
        (1, 0)
    );
    let q = FetchLogQuery::default();
    assert_eq!(f.store.fetch_log("a", &q).await.unwrap().items.len(), 3);
    let log_b = f.store.fetch_log("b", &q).await.unwrap();
    assert_eq!(log_b.items.len(), 1);
    assert_eq!(log_b.items[0].outcome, Outcome::Ok);
    // A cursor taken from another workspace's log does not reach into it.
    let a_ids: Vec<i64> = f
        .store
        .fetch_log("a", &q)
        .await
        .unwrap()
        .items
        .iter()
        .map(|e| e.id)
        .collect();
    let crossed = f
        .store
        .fetch_log(
            "b",
            &FetchLogQuery {
                before: Some(a_ids[0] + 1),
                ..q.clone()
            },
        )
        .await
        .unwrap();
    assert!(crossed.items.iter().all(|e| !a_ids.contains(&e.id)));
    assert!(f
        .store
        .fetch_log(
            "b",
            &FetchLogQuery {
                only_errors: true,
                ..q.clone()
            }
        )
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(f
        .store
        .fetch_log(
            "b",
            &FetchLogQuery {
                blocked_only: true,
                ..q
            }
        )
        .await
        .unwrap()
        .items
        .is_empty());
}

async fn monitoring_counts_add_up_with_concurrent_writers(b: Backend) {
    const TASKS: usize = 8;
    const PER_TASK: usize = 200;
    const PER_RUN: usize = 4;
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    // All in the same connector and the same minute bucket (so every writer upserts the same row).
    let minute = now_ms() / MIN * MIN;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        // One store (one connection; for SQLite one `open` of the same file) per task.
        let s = f.reopen().await;
        let ws_id = ws.id.clone();
        handles.push(tokio::spawn(async move {
            let attempts: Vec<FetchAttempt> = (0..PER_TASK)
                .map(|i| {
                    let at = minute + ((t * PER_TASK + i) % 59_000) as i64;
                    let name = if i % 2 == 0 { "stripe" } else { "Stripe" };
                    match i % 10 {
                        0 => blocked_at(at),
                        1 | 2 => status_at(at, name, 500),
                        3 => failed_at(at, name, "timeout"),
                        _ => ok_at(at, name),
                    }
                })
                .collect();
            for run in attempts.chunks(PER_RUN) {
                s.record_fetch_attempts(Some(&ws_id), run).await.unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let total = (TASKS * PER_TASK) as u64;
    let blocked = total / 10;
    let errors = total * 3 / 10;
    let since = minute - HOUR;
    let got = f.store.connector_counts("w", since).await.unwrap();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        store::counts_for(&got, "stripe"),
        counts(total - blocked, errors)
    );
    assert_eq!(f.store.blocked_count("w", since).await.unwrap(), blocked);
    let minutes = f
        .store
        .connector_series("w", "stripe", since, MIN)
        .await
        .unwrap();
    let busy: Vec<_> = minutes.iter().filter(|p| p.requests > 0).collect();
    assert_eq!(busy.len(), 1, "one minute bucket");
    assert_eq!(
        (busy[0].start, busy[0].requests, busy[0].errors),
        (minute, total - blocked, errors)
    );
    // And every attempt row is there.
    let rows = all_pages(
        &*f.store,
        "w",
        &FetchLogQuery {
            limit: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(rows.len() as u64, total);
    let error_rows = all_pages(
        &*f.store,
        "w",
        &FetchLogQuery {
            connector: Some("stripe".into()),
            only_errors: true,
            limit: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(error_rows.len() as u64, errors);
}

async fn monitoring_prune_deletes_in_batches(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let now = now_ms();
    // On a whole minute, so the last old attempt's minute bucket is wholly before it.
    let cutoff = now / MIN * MIN - 30 * 24 * HOUR;
    // 250 old attempts (over several days and connectors, a few blocked) and 10 recent ones.
    let old: Vec<FetchAttempt> = (0..250i64)
        .map(|i| {
            let at = cutoff - 1 - i * 37 * MIN;
            match i % 25 {
                0 => blocked_at(at),
                1 => status_at(at, "github", 500),
                _ => ok_at(at, if i % 2 == 0 { "stripe" } else { "github" }),
            }
        })
        .collect();
    for run in old.chunks(50) {
        f.store
            .record_fetch_attempts(Some(&ws.id), run)
            .await
            .unwrap();
    }
    let recent: Vec<FetchAttempt> = (0..10i64)
        .map(|i| status_at(now - i * HOUR, "stripe", 200 + (i as u16 % 2) * 300))
        .collect();
    f.store
        .record_fetch_attempts(Some(&ws.id), &recent)
        .await
        .unwrap();
    // An attempt exactly at the cutoff stays.
    f.store
        .record_fetch_attempts(Some(&ws.id), &[ok_at(cutoff, "stripe")])
        .await
        .unwrap();
    let ever = now - 400 * 24 * HOUR;
    let before = f.store.connector_counts("w", ever).await.unwrap();
    assert_eq!(
        before["stripe"].requests + before["github"].requests,
        250 - 10 + 11
    );

    assert_eq!(f.store.prune_fetch_attempts(cutoff, 40).await.unwrap(), 250);
    assert_eq!(f.store.prune_fetch_attempts(cutoff, 40).await.unwrap(), 0);
    let left = all_pages(
        &*f.store,
        "w",
        &FetchLogQuery {
            limit: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(left.len(), 11);
    assert!(left.iter().all(|e| e.attempt.at_ms >= cutoff));
    // The buckets before the cutoff's minute went too; the recent counts are untouched.
    let after = f.store.connector_counts("w", ever).await.unwrap();
    assert_eq!(store::counts_for(&after, "stripe"), counts(11, 5));
    assert_eq!(store::counts_for(&after, "github"), counts(0, 0));
    assert_eq!(f.store.blocked_count("w", ever).await.unwrap(), 0);
    assert_eq!(
        f.store
            .connector_counts("w", now - 24 * HOUR)
            .await
            .unwrap()["stripe"],
        counts(10, 5)
    );
    // A batch of 0 means 1; a huge one is bounded; everything goes when asked.
    assert_eq!(
        f.store.prune_fetch_attempts(now + MIN, 0).await.unwrap(),
        11
    );
    assert!(f
        .store
        .connector_counts("w", ever)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        f.store
            .prune_fetch_attempts(now + MIN, u32::MAX)
            .await
            .unwrap(),
        0
    );
}

async fn monitoring_prune_does_not_block_writers(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let now = now_ms();
    let cutoff = now - 30 * 24 * HOUR;
    let old: Vec<FetchAttempt> = (0..3000i64)
        .map(|i| ok_at(cutoff - 1 - i * MIN, "stripe"))
        .collect();
    for run in old.chunks(500) {
        f.store
            .record_fetch_attempts(Some(&ws.id), run)
            .await
            .unwrap();
    }
    // Prune through one connection in small batches while another records runs.
    let pruner = f.reopen().await;
    let prune = tokio::spawn(async move { pruner.prune_fetch_attempts(cutoff, 50).await.unwrap() });
    let writer = f.reopen().await;
    let ws_id = ws.id.clone();
    let write = tokio::spawn(async move {
        let mut slowest = std::time::Duration::ZERO;
        for i in 0..60i64 {
            let t = std::time::Instant::now();
            writer
                .record_fetch_attempts(Some(&ws_id), &[status_at(now - i, "stripe", 500)])
                .await
                .unwrap();
            slowest = slowest.max(t.elapsed());
        }
        slowest
    });
    let (pruned, slowest) = (prune.await.unwrap(), write.await.unwrap());
    assert_eq!(pruned, 3000);
    // Generous bound: a writer waits for at most one batch at a time, never for the whole prune.
    assert!(
        slowest < std::time::Duration::from_secs(5),
        "a write waited {slowest:?}"
    );
    assert_eq!(
        f.store
            .connector_counts("w", now - 24 * HOUR)
            .await
            .unwrap()["stripe"],
        counts(60, 60)
    );
}

async fn monitoring_upgrade_backfills_outcomes_and_counts(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let now = now_ms();
    let attempts = vec![
        ok_at(now - HOUR, "Stripe"),
        status_at(now - HOUR, "Stripe", 500),
        failed_at(now - 2 * HOUR, "Stripe", "timeout"),
        failed_at(now - 2 * HOUR, "github", "network_error"),
        blocked_at(now - 3 * HOUR),
        ok_at(now - 48 * HOUR, "github"),
    ];
    f.store
        .record_fetch_attempts(Some(&ws.id), &attempts)
        .await
        .unwrap();
    // Back to a schema-2 store with those rows, as an older codestep left it.
    let drop_indexes = "DROP TABLE runs; DROP INDEX fetch_attempts_by_run;
         DROP INDEX fetch_attempts_by_connector; DROP INDEX fetch_attempts_errors;
         DROP INDEX fetch_attempts_blocked; DROP INDEX fetch_attempts_by_at;
         DROP TABLE fetch_buckets; DROP TABLE blocked_buckets;";
    f.raw_exec(&format!(
        "{drop_indexes} ALTER TABLE fetch_attempts DROP COLUMN outcome; ALTER TABLE fetch_attempts DROP COLUMN connector_key;
         ALTER TABLE api_tokens DROP COLUMN scopes; ALTER TABLE api_tokens DROP COLUMN expires_at;
         ALTER TABLE audit_log DROP COLUMN address;
         {UNDO_SCHEMA_6} DELETE FROM codestep_schema WHERE version >= 3"
    ))
    .await;
    let s = f.reopen().await;
    assert_eq!(
        s.schema_version().await.unwrap(),
        store::migrate::latest(match b {
            Backend::Sqlite => store::migrate::SQLITE,
            Backend::Postgres => store::migrate::POSTGRES,
        })
    );
    let since = now - 24 * HOUR;
    let got = s.connector_counts("w", since).await.unwrap();
    assert_eq!(store::counts_for(&got, "stripe"), counts(3, 2));
    assert!(got.contains_key("Stripe"), "{got:?}");
    assert_eq!(store::counts_for(&got, "github"), counts(1, 1));
    assert_eq!(s.blocked_count("w", since).await.unwrap(), 1);
    let log = s.fetch_log("w", &FetchLogQuery::default()).await.unwrap();
    let outcomes: Vec<Outcome> = log.items.iter().map(|e| e.outcome).collect();
    let want: Vec<Outcome> = attempts.iter().rev().map(FetchAttempt::outcome).collect();
    assert_eq!(outcomes, want);
    let errors = s
        .fetch_log(
            "w",
            &FetchLogQuery {
                connector: Some("STRIPE".into()),
                only_errors: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(errors.items.len(), 2);
}

async fn monitoring_reads_are_index_scans(b: Backend) {
    let f = fixture(b).await;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let now = now_ms();
    let attempts: Vec<FetchAttempt> = (0..200i64)
        .map(|i| match i % 20 {
            0 => blocked_at(now - i * MIN),
            1 => status_at(now - i * MIN, "stripe", 500),
            _ => ok_at(now - i * MIN, if i % 2 == 0 { "stripe" } else { "github" }),
        })
        .collect();
    f.store
        .record_fetch_attempts(Some(&ws.id), &attempts)
        .await
        .unwrap();
    let errors = FetchLogQuery {
        connector: Some("stripe".into()),
        only_errors: true,
        since: Some(now - 24 * HOUR),
        until: Some(now),
        before: Some(i64::MAX),
        ..Default::default()
    };
    let timeouts = FetchLogQuery {
        connector: Some("stripe".into()),
        outcome: Some(Outcome::Timeout),
        ..Default::default()
    };
    let blocked = FetchLogQuery {
        blocked_only: true,
        ..Default::default()
    };
    let connector_log = FetchLogQuery {
        connector: Some("stripe".into()),
        ..Default::default()
    };
    let cases = [
        (&errors, "fetch_attempts_errors"),
        (&timeouts, "fetch_attempts_errors"),
        (&blocked, "fetch_attempts_blocked"),
        (&connector_log, "fetch_attempts_by_connector"),
    ];
    for (q, index) in cases {
        let plans: HashMap<&str, String> = match b {
            Backend::Sqlite => {
                let s = store::SqliteStore::open(std::path::Path::new(&f.location))
                    .await
                    .unwrap();
                s.monitoring_plans("w", q)
                    .await
                    .unwrap()
                    .into_iter()
                    .collect()
            }
            Backend::Postgres => {
                // The tables are tiny, so forbid sequential scans: this checks an index can serve
                // each read at all (the benchmark shows the planner choosing them at scale).
                let s = store::PostgresStore::open(&f.location).await.unwrap();
                s.monitoring_plans("w", q, true)
                    .await
                    .unwrap()
                    .into_iter()
                    .collect()
            }
        };
        let log = &plans["fetch_log"];
        assert!(log.contains(index), "{q:?}: {log}");
        for read in ["connector_counts", "connector_series", "blocked_count"] {
            let plan = &plans[read];
            match b {
                Backend::Sqlite => {
                    assert!(
                        plan.contains("USING")
                            && !plan.contains("SCAN fetch_buckets")
                            && !plan.contains("SCAN blocked_buckets"),
                        "{read}: {plan}"
                    )
                }
                Backend::Postgres => assert!(
                    plan.contains("Index") && !plan.contains("Seq Scan"),
                    "{read}: {plan}"
                ),
            }
        }
        // Health: a connector's newest attempts and its last error, straight off their indexes.
        for (read, index) in [
            ("recent_outcomes", "fetch_attempts_by_connector"),
            ("last_error", "fetch_attempts_errors"),
        ] {
            let plan = &plans[read];
            assert!(plan.contains(index), "{read}: {plan}");
            assert!(
                !plan.contains("TEMP B-TREE") && !plan.contains("Sort"),
                "{read}: {plan}"
            );
        }
        if b == Backend::Sqlite {
            // Newest first straight off the index: no sort step.
            assert!(!log.contains("TEMP B-TREE"), "{q:?}: {log}");
            assert!(
                plans["prune"].contains("fetch_attempts_by_at"),
                "{}",
                plans["prune"]
            );
        } else {
            assert!(!log.contains("Sort"), "{q:?}: {log}");
        }
    }
}

#[test]
fn timestamps_format_as_rfc3339_utc() {
    assert_eq!(store::format_time(0), "1970-01-01T00:00:00Z");
    assert_eq!(store::format_time(951_782_400_000), "2000-02-29T00:00:00Z");
    assert_eq!(
        store::format_time(1_700_000_000_999),
        "2023-11-14T22:13:20Z"
    );
    assert_eq!(
        store::format_time(4_102_444_799_000),
        "2099-12-31T23:59:59Z"
    );
}

/// A PostgreSQL store location with a fresh schema, for tests outside this module (several
/// `codestep serve` processes sharing one store).
pub(crate) fn fresh_pg_location_blocking() -> String {
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(fresh_location(Backend::Postgres, &dir))
}

/// A PostgreSQL node whose connection is dropped (a server restart, an idle timeout) reconnects on
/// its next call instead of failing until the process restarts.
#[tokio::test]
async fn postgres_store_reconnects_after_its_connection_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let app = format!("codestep_reconnect_{}", random_suffix());
    let location = format!(
        "{}&application_name={app}",
        fresh_location(Backend::Postgres, &dir).await
    );
    let store = store::open(&location).await.unwrap();
    store
        .create_workspace("before", &store::Actor::named("test"))
        .await
        .unwrap();
    let admin = pg_admin().await;
    let killed = admin
        .query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap();
    assert_eq!(killed.len(), 1, "the store's connection was not found");
    // The client notices the closed connection asynchronously.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    store
        .create_workspace("after", &store::Actor::named("test"))
        .await
        .expect("the store reconnects");
    let names: Vec<String> = store
        .list_workspaces()
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["after", "before"]);
}

fn migrations_of(b: Backend) -> &'static [store::migrate::Migration] {
    match b {
        Backend::Sqlite => store::migrate::SQLITE,
        Backend::Postgres => store::migrate::POSTGRES,
    }
}

/// A migration whose SQL changed after it ran (here: whose recorded checksum no longer matches) is
/// refused by name, and the store is left as it was.
async fn edited_migration_is_refused_by_name(b: Backend) {
    let f = fixture(b).await;
    f.store.create_workspace("keep", ACTOR).await.unwrap();
    let recorded = f.raw_checksums().await;
    assert_eq!(recorded.len(), migrations_of(b).len());
    for (m, (version, checksum)) in migrations_of(b).iter().zip(&recorded) {
        assert_eq!(i64::from(m.version), *version);
        assert_eq!(
            checksum.as_deref(),
            Some(store::migrate::checksum(m.sql).as_str())
        );
    }
    f.raw_exec("UPDATE codestep_schema SET checksum = 'the SQL before an edit' WHERE version = 2")
        .await;
    let err = match store::open(&f.location).await {
        Ok(_) => panic!("a store with an edited migration opened"),
        Err(e) => e,
    };
    assert!(matches!(err, StoreError::Schema(_)), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("migration 2 (tokens_and_fetches)") && msg.contains("edited"),
        "{msg}"
    );
    assert_eq!(f.store.list_workspaces().await.unwrap().len(), 1);
}

/// Stores migrated before checksums were kept open as before, and get their checksums recorded.
async fn stores_without_checksums_get_them_on_first_start(b: Backend) {
    let f = fixture(b).await;
    f.store.create_workspace("keep", ACTOR).await.unwrap();
    drop(f.store.clone());
    f.raw_exec("ALTER TABLE codestep_schema DROP COLUMN checksum")
        .await;
    let reopened = f.reopen().await;
    assert_eq!(reopened.list_workspaces().await.unwrap().len(), 1);
    let recorded = f.raw_checksums().await;
    for (m, (_, checksum)) in migrations_of(b).iter().zip(&recorded) {
        assert_eq!(
            checksum.as_deref(),
            Some(store::migrate::checksum(m.sql).as_str())
        );
    }
    // And from then on an edit is caught.
    f.raw_exec("UPDATE codestep_schema SET checksum = 'x' WHERE version = 1")
        .await;
    let err = store::open(&f.location).await.err().expect("refused");
    assert!(err.to_string().contains("migration 1 (init)"), "{err}");
}

/// While a write transaction is open (a key rotation, held open by a slow re-encryption), reads of the
/// same store answer at once instead of queueing behind it.
async fn reads_do_not_wait_behind_a_write(b: Backend) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 7)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    store::create_connector(
        &*f.store,
        &vault,
        "w",
        &header_spec("stripe", "https://api.stripe.com/*"),
        &secret(SECRET_A),
        ACTOR,
    )
    .await
    .unwrap();
    let (token, _) = store::create_api_token(&*f.store, "w", "ci", &all_scopes(), ACTOR)
        .await
        .unwrap();
    let hash = store::hash_api_token(token.expose());
    // The first use is recorded (a write); later ones within the minute are reads.
    assert!(f
        .store
        .authenticate_api_token(&hash)
        .await
        .unwrap()
        .is_some());
    let in_write = Arc::new(AtomicBool::new(false));
    let flag = in_write.clone();
    let rekey: store::Rekey = Arc::new(move |row: &store::SecretRow| {
        flag.store(true, Ordering::SeqCst);
        // Lets the runtime move this worker's other tasks away while it sleeps (PostgreSQL runs the
        // job on a runtime worker; SQLite on a blocking thread, where this just sleeps).
        tokio::task::block_in_place(|| std::thread::sleep(std::time::Duration::from_millis(1500)));
        Ok(row.sealed.clone())
    });
    let writer = {
        let s = f.store.clone();
        tokio::spawn(async move { s.reencrypt_secrets(rekey, 1, ACTOR).await })
    };
    while !in_write.load(Ordering::SeqCst) {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let started = std::time::Instant::now();
    assert_eq!(f.store.list_workspaces().await.unwrap().len(), 1);
    assert_eq!(
        f.store.connector("w", "stripe").await.unwrap().name,
        "stripe"
    );
    // Used a moment ago, so authenticating is a read.
    assert!(f
        .store
        .authenticate_api_token(&hash)
        .await
        .unwrap()
        .is_some());
    let took = started.elapsed();
    assert!(
        !writer.is_finished(),
        "the write ended before the reads were checked"
    );
    assert!(
        took < std::time::Duration::from_millis(700),
        "reads waited {took:?} behind the open write"
    );
    assert_eq!(writer.await.unwrap().unwrap(), 1);
}

/// 20 authentications at once while retention prunes a large backlog in batches: every one answers,
/// none waits for the pruning to end. On PostgreSQL with a pool smaller than the callers.
async fn authentications_go_on_while_retention_runs(b: Backend) {
    let f = fixture(b).await;
    let store: Arc<dyn Store> = match b {
        Backend::Sqlite => f.store.clone(),
        Backend::Postgres => {
            let s = store::PostgresStore::open(&format!("{}&pool_size=4", f.location))
                .await
                .unwrap();
            assert_eq!(s.pool_size(), 4);
            Arc::new(s)
        }
    };
    store.create_workspace("w", ACTOR).await.unwrap();
    let ws = store.workspace("w").await.unwrap();
    let (token, _) = store::create_api_token(&*store, "w", "ci", &all_scopes(), ACTOR)
        .await
        .unwrap();
    let hash = store::hash_api_token(token.expose());
    let old: i64 = 1_000; // stamps long past: 1970
    let backlog: Vec<FetchAttempt> = (0..20_000)
        .map(|i| FetchAttempt {
            at_ms: old + i,
            run_id: None,
            connector: Some("stripe".into()),
            method: "GET".into(),
            host: "api.stripe.com".into(),
            path: "/v1/balance".into(),
            status: Some(200),
            error: None,
            blocked: false,
            redirects: 0,
            status_text: None,
            error_excerpt: None,
            duration_ms: 1.0,
        })
        .collect();
    for chunk in backlog.chunks(2_000) {
        store
            .record_fetch_attempts(Some(&ws.id), chunk)
            .await
            .unwrap();
    }
    let pruner = {
        let s = store.clone();
        tokio::spawn(async move { s.prune_fetch_attempts(1_000_000, 500).await })
    };
    let started = std::time::Instant::now();
    let auths = (0..20).map(|_| {
        let (s, h) = (store.clone(), hash.clone());
        tokio::spawn(async move {
            let t = std::time::Instant::now();
            let found = s.authenticate_api_token(&h).await.unwrap().is_some();
            (found, t.elapsed())
        })
    });
    let results = futures::future::join_all(auths).await;
    let all = started.elapsed();
    for r in results {
        let (found, took) = r.unwrap();
        assert!(found);
        assert!(
            took < std::time::Duration::from_secs(2),
            "an authentication took {took:?}"
        );
    }
    assert_eq!(pruner.await.unwrap().unwrap(), 20_000);
    eprintln!("{b:?}: 20 concurrent authentications during retention took {all:?} in all");
}

/// The run path's read: the workspace and each named connector in order, `None` for a name without
/// a connector, names ignoring case.
async fn a_run_reads_its_connectors_in_one_call(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 7)]);
    f.store.create_workspace("W", ACTOR).await.unwrap();
    for (name, s) in [("alpha", SECRET_A), ("beta", SECRET_B)] {
        store::create_connector(
            &*f.store,
            &vault,
            "w",
            &header_spec(name, "https://api.example.com/*"),
            &secret(s),
            ACTOR,
        )
        .await
        .unwrap();
    }
    let names = ["BETA".to_string(), "nope".into(), "alpha".into()];
    let (ws, found) = f.store.connectors_for_run("w", &names).await.unwrap();
    assert_eq!(ws.name, "W");
    let got: Vec<Option<&str>> = found
        .iter()
        .map(|c| c.as_ref().map(|c| c.name.as_str()))
        .collect();
    assert_eq!(got, [Some("beta"), None, Some("alpha")]);
    let (_, none) = f.store.connectors_for_run("w", &[]).await.unwrap();
    assert!(none.is_empty());
    let err = f
        .store
        .connectors_for_run("nows", &names)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound(_)), "{err:?}");
    let (ws, loaded) = store::load_run(&*f.store, &vault, "w", &["alpha".into()])
        .await
        .unwrap();
    assert_eq!((ws.name.as_str(), loaded.len()), ("W", 1));
}

/// The run history: a run and its fetch records are written together; runs list newest first with a
/// cursor, filter by outcome, time and connector, and one run comes back with its requests.
async fn run_history_pages_filters_and_keeps_a_runs_requests(b: Backend) {
    let f = fixture(b).await;
    f.store.create_workspace("w", ACTOR).await.unwrap();
    f.store.create_workspace("other", ACTOR).await.unwrap();
    let ws = f.store.workspace("w").await.unwrap();
    // Ten minutes ago: inside the 24 h window the counts read.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 600_000;
    for i in 0..7i64 {
        let id = format!("run{i}");
        let outcome = if i % 3 == 0 { "timeout" } else { "ok" };
        let run = store::RunRecord {
            id: id.clone(),
            workspace_id: ws.id.clone(),
            started_at: base + i * 1000,
            ended_at: base + i * 1000 + 5,
            step_hash: "ab".repeat(32),
            token: "orchestrator".into(),
            outcome: outcome.into(),
            error_message: (outcome != "ok").then(|| "step exceeded its wall time".into()),
            duration_ms: 5.0,
            fetches: (i % 2) as u32,
            output_bytes: 2,
            logs_dropped: 0,
            logs: r#"[{"level":"log","message":"hi","time":1}]"#.into(),
            io: None,
        };
        let mut attempts = Vec::new();
        if i % 2 == 1 {
            let mut a = codestep::egress::FetchRecord::start("GET");
            a.at_ms = base + i * 1000 + 1;
            a.run_id = Some(id.clone());
            a.connector = Some(if i == 3 { "Stripe" } else { "github" }.into());
            a.host = "api.example.com".into();
            a.path = "/v1/x".into();
            a.status = Some(200);
            attempts.push(a);
        }
        f.store.record_run(&run, &attempts).await.unwrap();
    }
    // Newest first, in pages of 3, without gaps or repeats.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = f
            .store
            .runs(
                "w",
                &store::RunQuery {
                    limit: 3,
                    before: before.clone(),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|r| r.id.clone()));
        match page.next {
            Some(c) => before = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        ["run6", "run5", "run4", "run3", "run2", "run1", "run0"]
    );
    let timeouts = f
        .store
        .runs(
            "w",
            &store::RunQuery {
                outcome: Some("timeout".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<_> = timeouts.items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["run6", "run3", "run0"]);
    let windowed = f
        .store
        .runs(
            "w",
            &store::RunQuery {
                since: Some(base + 2000),
                until: Some(base + 4000),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(windowed.items.len(), 3);
    let stripe = f
        .store
        .runs(
            "w",
            &store::RunQuery {
                connector: Some("STRIPE".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ids: Vec<_> = stripe.items.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["run3"]);
    let (run, requests) = f.store.run("w", "run3").await.unwrap();
    assert_eq!(run.outcome, "timeout");
    assert_eq!(run.token, "orchestrator");
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].connector.as_deref(), Some("Stripe"));
    // The run's fetches count in the 24 h buckets like any other.
    let counts = f.store.connector_counts("w", base - 60_000).await.unwrap();
    assert_eq!(
        counts.values().map(|c| c.requests).sum::<u64>(),
        3,
        "{counts:?}"
    );
    // Another workspace sees none of it.
    assert!(matches!(
        f.store.run("other", "run3").await,
        Err(store::StoreError::NotFound(_))
    ));
    assert!(f
        .store
        .runs("other", &Default::default())
        .await
        .unwrap()
        .items
        .is_empty());
}

/// A mistyped store location is refused, never turned into a new empty SQLite file, and the error
/// does not repeat it (it may hold a password).
#[tokio::test]
async fn unknown_store_locations_are_refused() {
    for location in [
        "postgress://codestep:hunter2pw@db/codestep",
        "mysql://codestep:hunter2pw@db/codestep",
        "host=db user=codestep password=hunter2pw dbname=codestep",
    ] {
        let err = match store::open(location).await {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{location:?} opened a store"),
        };
        assert!(
            !err.contains("hunter2pw"),
            "the error repeats the location: {err}"
        );
        assert!(err.contains("scheme") || err.contains("key=value"), "{err}");
        assert!(!std::path::Path::new(location).exists());
    }
}

/// A connector row as codestep wrote it before named secrets existed: the placement JSON of that time
/// and the secret sealed alone. It must load, decrypt as the one secret named `secret`, and inject.
async fn a_row_written_before_named_secrets_still_decrypts_and_injects(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    let server = crate::support::TestServer::start(crate::support::Reply::echo);
    let rec = store::create_connector(
        &*f.store,
        &vault,
        "w",
        &ConnectorSpec {
            name: "legacy".into(),
            patterns: vec![server.pattern("api.test")],
            placement: Placement::query("k".into()),
            scrub_echo: false,
        },
        &secret(SECRET_C),
        ACTOR,
    )
    .await
    .unwrap();
    // Overwrite with exactly what the old code stored.
    f.raw_exec(&format!(
        r#"UPDATE connectors SET placement = '{{"type":"header","name":"Authorization","template":"Bearer {{{{secret}}}}"}}' WHERE id = '{}'"#,
        rec.id
    ))
    .await;
    let old = vault
        .seal(
            &codestep::vault::SecretContext {
                workspace_id: &ws.id,
                connector_id: &rec.id,
            },
            &secret(SECRET_A),
        )
        .unwrap();
    f.raw_set_secret(&rec.id, &old.ciphertext, &old.nonce, old.key_version)
        .await;

    let loaded = store::load_step_connectors(&*f.store, &vault, "w", &["legacy".into()])
        .await
        .unwrap();
    assert_eq!(
        loaded[0].secrets.names().collect::<Vec<_>>(),
        vec!["secret"]
    );
    let egress = codestep::egress::Egress::new(crate::support::egress_config()).unwrap();
    let (res, _) = egress
        .fetch(
            &loaded,
            codestep::egress::FetchRequest {
                method: "GET".into(),
                url: server.url("api.test", "/x"),
                headers: vec![],
                body: None,
                redirect: codestep::egress::RedirectMode::Follow,
            },
            &codestep::egress::RequestLimits::default(),
        )
        .await;
    assert!(res.is_ok());
    let seen = &server.requests()[0];
    assert!(seen.header("authorization") == Some(&format!("Bearer {SECRET_A}")[..]));
    // And a single secret is still sealed the old way, so older nodes read new rows too.
    let rec = f.store.connector("w", "legacy").await.unwrap();
    assert!(decrypt(&f, &vault, "w", "legacy").await.unwrap() == SECRET_A);
    assert_eq!(
        rec.placement,
        Placement::header("Authorization".into(), "Bearer {{secret}}".into())
    );
}

async fn named_secrets_are_one_sealed_set_and_the_secret_rule_needs_all_of_them(b: Backend) {
    let f = fixture(b).await;
    let vault = vault_with(&[(1, 1)]);
    f.store.create_workspace("w", ACTOR).await.unwrap();
    let placement: Placement = serde_json::from_str(
        r#"{"type":"header","headers":[{"name":"DD-API-KEY","template":"{{secret.api_key}}"},{"name":"DD-APPLICATION-KEY","template":"{{secret.app_key}}"}]}"#,
    )
    .unwrap();
    let set = |a: &str, b: &str| {
        let mut s = codestep::connector::Secrets::new();
        s.insert("api_key", secret(a));
        s.insert("app_key", secret(b));
        s
    };
    let spec = ConnectorSpec {
        name: "dd".into(),
        patterns: vec!["https://api.datadoghq.com/*".into()],
        placement: placement.clone(),
        scrub_echo: false,
    };
    let e = store::create_connector(&*f.store, &vault, "w", &spec, &secret(SECRET_A), ACTOR)
        .await
        .unwrap_err();
    no_secret_in(&e.to_string());
    assert!(e.to_string().contains("secrets.api_key"), "{e}");
    store::create_connector(
        &*f.store,
        &vault,
        "w",
        &spec,
        set(SECRET_A, SECRET_B),
        ACTOR,
    )
    .await
    .unwrap();
    let rec = f.store.connector("w", "dd").await.unwrap();
    let got = store::decrypt_secrets(&*f.store, &vault, &rec)
        .await
        .unwrap();
    assert!(got.get("api_key").unwrap().expose() == SECRET_A);
    assert!(got.get("app_key").unwrap().expose() == SECRET_B);

    // Restricting methods or removing headers changes how the secrets are placed: it needs them all.
    let restricted = placement.clone().with_methods(&["GET"]);
    let e = store::update_connector(
        &*f.store,
        &vault,
        "w",
        "dd",
        ConnectorUpdate {
            placement: Some(restricted.clone()),
            ..Default::default()
        },
        ACTOR,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("needs its secret again"), "{e}");
    let mut half = codestep::connector::Secrets::new();
    half.insert("api_key", secret(SECRET_C));
    let e = store::update_connector(
        &*f.store,
        &vault,
        "w",
        "dd",
        ConnectorUpdate {
            placement: Some(restricted.clone()),
            secrets: Some(half),
            ..Default::default()
        },
        ACTOR,
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("secrets.app_key"), "{e}");
    no_secret_in(&e.to_string());
    let rec = store::update_connector(
        &*f.store,
        &vault,
        "w",
        "dd",
        ConnectorUpdate {
            placement: Some(restricted.clone()),
            secrets: Some(set(SECRET_C, SECRET_A)),
            ..Default::default()
        },
        ACTOR,
    )
    .await
    .unwrap();
    assert_eq!(rec.placement, restricted);

    // Key rotation re-encrypts the set as it is.
    let v12 = vault_with(&[(1, 1), (2, 2)]);
    let (v, _) = store::rotate_keys(&*f.store, &v12, ACTOR, None)
        .await
        .unwrap();
    let loaded = store::load_step_connectors(&*f.store, &v, "w", &["dd".into()])
        .await
        .unwrap();
    assert!(loaded[0].secrets.get("api_key").unwrap().expose() == SECRET_C);
    assert!(loaded[0].secrets.get("app_key").unwrap().expose() == SECRET_A);
    assert_eq!(loaded[0].placement.methods, vec!["GET".to_string()]);
}

/// A workspace that keeps run input and output gets them sealed: bound to the workspace, the run and
/// the field (moved to another run, or input passed off as output, they fail to open), and
/// re-encrypted by a key rotation. Off by default.
async fn kept_run_io_is_sealed_bound_to_its_run_and_rotated(b: Backend) {
    let f = fixture(b).await;
    let key_file = f.dir.path().join("master.key");
    let v1 = Vault::load_file(&key_file, true).unwrap().vault;
    let ws = f.store.create_workspace("w", ACTOR).await.unwrap();
    assert!(
        !ws.keep_run_io,
        "keeping run input and output is off by default"
    );
    assert!(
        f.store
            .set_keep_run_io("W", true, ACTOR)
            .await
            .unwrap()
            .keep_run_io
    );
    assert!(f.store.workspace("w").await.unwrap().keep_run_io);
    let audit = f.store.audit_log(Some("w"), None, 1).await.unwrap();
    assert_eq!(audit[0].action, "workspace.update");

    let io = store::seal_run_io(&*f.store, &v1, &ws.id, "r1", r#"{"a":1}"#, Some("2"))
        .await
        .unwrap();
    assert_eq!(io.input.key_version, 1);
    let run = |id: &str, io: Option<store::SealedRunIo>| store::RunRecord {
        id: id.into(),
        workspace_id: ws.id.clone(),
        started_at: 1_000,
        ended_at: 1_005,
        step_hash: "ab".repeat(32),
        token: "t".into(),
        outcome: "ok".into(),
        error_message: None,
        duration_ms: 5.0,
        fetches: 0,
        output_bytes: 1,
        logs_dropped: 0,
        logs: "[]".into(),
        io,
    };
    f.store
        .record_run(&run("r1", Some(io.clone())), &[])
        .await
        .unwrap();
    f.store.record_run(&run("r2", None), &[]).await.unwrap();
    let (stored, _) = f.store.run("w", "r1").await.unwrap();
    assert_eq!(stored.io.as_ref(), Some(&io));
    assert_eq!(
        store::open_run_io(&v1, &stored, &io).unwrap(),
        (r#"{"a":1}"#.to_string(), Some("2".to_string()))
    );
    assert!(f.store.run("w", "r2").await.unwrap().0.io.is_none());
    // Bound to its run and field.
    assert!(store::open_run_io(&v1, &run("r2", None), &io).is_err());
    let swapped = store::SealedRunIo {
        input: io.output.clone().unwrap(),
        output: Some(io.input.clone()),
    };
    assert!(store::open_run_io(&v1, &stored, &swapped).is_err());

    let (v2, report) = store::rotate_keys(&*f.store, &v1, &store::Actor::named("cli:ops"), None)
        .await
        .unwrap();
    assert_eq!((report.version, report.runs_reencrypted), (2, 1));
    let (rotated, _) = f.store.run("w", "r1").await.unwrap();
    let rio = rotated.io.clone().unwrap();
    assert_eq!(rio.input.key_version, 2);
    assert_eq!(rio.output.as_ref().unwrap().key_version, 2);
    assert_ne!(rio.input.nonce, io.input.nonce);
    assert_eq!(
        store::open_run_io(&v2, &rotated, &rio).unwrap().0,
        r#"{"a":1}"#
    );
    assert!(
        !f.store
            .set_keep_run_io("w", false, ACTOR)
            .await
            .unwrap()
            .keep_run_io
    );
}

/// Health from the 24 h counts and the newest attempts: idle without requests, some errors when most
/// recent requests succeed, failing when most of the last ten failed; the last error's time whatever
/// the window.
async fn connector_health_tells_some_errors_from_failing(b: Backend) {
    let f = fixture(b).await;
    f.store.create_workspace("w", ACTOR).await.unwrap();
    let ws = f.store.workspace("w").await.unwrap();
    let now = now_ms();
    let since = now - 24 * 3_600_000;
    let mut attempts = Vec::new();
    // "flaky": an old error two days ago, then two errors among twelve recent requests.
    attempts.push(status_at(now - 48 * 3_600_000, "flaky", 500));
    for i in 0..12 {
        attempts.push(if i == 3 || i == 9 {
            status_at(now - 60_000 + i, "flaky", 503)
        } else {
            ok_at(now - 60_000 + i, "flaky")
        });
    }
    // "down": fine an hour ago, then eight of its last ten failed; blocked attempts do not count.
    for i in 0..5 {
        attempts.push(ok_at(now - 3_600_000 + i, "down"));
    }
    for i in 0..10 {
        attempts.push(if i < 2 {
            ok_at(now - 30_000 + i, "down")
        } else if i % 2 == 0 {
            failed_at(now - 30_000 + i, "down", "timeout")
        } else {
            status_at(now - 30_000 + i, "down", 401)
        });
        attempts.push(blocked_at(now - 30_000 + i));
    }
    f.store
        .record_fetch_attempts(Some(&ws.id), &attempts)
        .await
        .unwrap();
    let names: Vec<String> = ["flaky", "DOWN", "quiet"].map(String::from).to_vec();
    let recent = f
        .store
        .recent_outcomes("w", &names, since, store::HEALTH_SAMPLE)
        .await
        .unwrap();
    let c24 = f.store.connector_counts("w", since).await.unwrap();
    let health = |n: &str| store::Health::of(store::counts_for(&c24, n), &recent[n].recent);
    assert_eq!(health("flaky"), store::Health::SomeErrors);
    assert_eq!(health("DOWN"), store::Health::Failing);
    assert_eq!(health("quiet"), store::Health::Idle);
    assert_eq!(recent["flaky"].recent.len(), 10);
    assert_eq!(
        recent["DOWN"]
            .recent
            .iter()
            .filter(|o| o.is_error())
            .count(),
        8
    );
    assert_eq!(recent["flaky"].last_error_at, Some(now - 60_000 + 9));
    assert_eq!(recent["quiet"], store::RecentOutcomes::default());
    assert_eq!(
        store::Health::of(counts(5, 0), &[Outcome::Ok; 5]),
        store::Health::Ok
    );
}
