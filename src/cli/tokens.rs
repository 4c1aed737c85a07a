//! `codestep token …` (a workspace's API tokens: create with scopes and an expiry, list, revoke) and
//! `codestep audit` (the audit trail, newest first). A token is printed once, when it is made; only
//! its hash is stored, and no command prints it again.

use clap::{Args, Subcommand};
use serde_json::json;

use super::manage::{actor, finish, open_store, print_json, print_table, Outcome, OutputArg};
use super::StoreArg;
use crate::store::{self, ApiToken, AuditEntry, Millis, Scope, Scopes, TokenGrant};

#[derive(Debug, Subcommand)]
pub enum TokenCmd {
    /// Make a token for a workspace and print it once (only its hash is stored).
    Create {
        /// The token's workspace.
        #[arg(long)]
        workspace: String,
        /// A label naming what uses the token; the audit trail and run history show it.
        #[arg(long)]
        label: String,
        /// What the token may do (repeatable): run (run steps, read runs), read (connectors,
        /// monitoring, audit), manage (change connectors and tokens).
        #[arg(long = "scope", value_name = "SCOPE", required = true, value_parser = parse_scope)]
        scopes: Vec<Scope>,
        /// When the token stops working, from now: a number with d, h or m, like 90d. Never, if absent.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration_ms)]
        expires_in: Option<Millis>,
        #[command(flatten)]
        output: OutputArg,
    },
    /// List a workspace's tokens (never the tokens themselves).
    List {
        /// The workspace whose tokens to list.
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Revoke a token: it stops working at once.
    Revoke {
        /// The token's workspace.
        #[arg(long)]
        workspace: String,
        /// The token's id, as `token list` shows it.
        id: String,
        #[command(flatten)]
        output: OutputArg,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// The workspace whose audit trail to show.
    #[arg(long)]
    pub workspace: String,
    /// How many entries, newest first (1 to 500).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub limit: u32,
    /// Only entries older than this id (the last id of the previous page).
    #[arg(long)]
    pub before: Option<i64>,
    #[command(flatten)]
    pub output: OutputArg,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    Scope::parse(s).map_err(|_| format!("{s:?} is not a scope: use run, read or manage"))
}

/// `90d`, `12h`, `30m` as milliseconds.
fn parse_duration_ms(s: &str) -> Result<Millis, String> {
    let err = || format!("{s:?} is not a duration: use a number with d, h or m, like 90d");
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: i64 = num.parse().map_err(|_| err())?;
    let unit_ms = match unit {
        "d" => 86_400_000,
        "h" => 3_600_000,
        "m" => 60_000,
        _ => return Err(err()),
    };
    if n <= 0 {
        return Err(err());
    }
    n.checked_mul(unit_ms).ok_or_else(err)
}

fn time_or(t: Option<Millis>, none: &str) -> String {
    t.map_or_else(|| none.to_string(), store::format_time)
}

fn token_json(t: &ApiToken) -> serde_json::Value {
    json!({
        "id": t.id,
        "label": t.name,
        "scopes": t.scopes.iter().map(Scope::as_str).collect::<Vec<_>>(),
        "created_at": store::format_time(t.created_at),
        "last_used_at": t.last_used_at.map(store::format_time),
        "expires_at": t.expires_at.map(store::format_time),
        "revoked_at": t.revoked_at.map(store::format_time),
        "state": t.state().as_str(),
    })
}

fn audit_json(e: &AuditEntry) -> serde_json::Value {
    json!({
        "id": e.id,
        "at": store::format_time(e.at),
        "who": e.actor,
        "address": e.address,
        "action": e.action,
        "connector": e.connector,
        "detail": e.detail,
    })
}

/// `codestep token …`. Returns the exit code.
pub async fn run_token(cmd: TokenCmd, db: StoreArg) -> anyhow::Result<i32> {
    Ok(finish(token(cmd, db).await))
}

async fn token(cmd: TokenCmd, db: StoreArg) -> Outcome {
    match cmd {
        TokenCmd::Create {
            workspace,
            label,
            scopes,
            expires_in,
            output,
        } => {
            let grant = TokenGrant {
                scopes: Scopes::new(scopes)?,
                expires_at: expires_in.map(|ms| store::now_millis() + ms),
            };
            let store = open_store(db).await?;
            let (token, rec) =
                store::create_api_token(&*store, &workspace, &label, &grant, &actor()).await?;
            if output.json() {
                let mut v = token_json(&rec);
                v["token"] = json!(token.expose());
                print_json(&v);
            } else {
                println!("{}", token.expose());
                eprintln!(
                    "created token {} ({:?}, scopes {}{}) for workspace {:?}; it is shown only this once",
                    rec.id,
                    rec.name,
                    rec.scopes,
                    rec.expires_at
                        .map(|at| format!(", expires {}", store::format_time(at)))
                        .unwrap_or_default(),
                    rec.workspace_name
                );
            }
        }
        TokenCmd::List { workspace, output } => {
            let store = open_store(db).await?;
            let tokens = store.list_api_tokens(&workspace).await?;
            if output.json() {
                print_json(&json!(tokens.iter().map(token_json).collect::<Vec<_>>()));
            } else {
                let rows: Vec<Vec<String>> = tokens
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.clone(),
                            t.name.clone(),
                            t.scopes.to_string(),
                            t.state().as_str().to_string(),
                            store::format_time(t.created_at),
                            time_or(t.last_used_at, "never"),
                            time_or(t.expires_at, "never"),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ID",
                        "LABEL",
                        "SCOPES",
                        "STATE",
                        "CREATED",
                        "LAST USED",
                        "EXPIRES",
                    ],
                    &rows,
                );
            }
        }
        TokenCmd::Revoke {
            workspace,
            id,
            output,
        } => {
            let store = open_store(db).await?;
            store.revoke_api_token(&workspace, &id, &actor()).await?;
            if output.json() {
                print_json(&json!({"revoked": id, "workspace": workspace}));
            } else {
                println!("revoked token {id} of workspace {workspace:?}");
            }
        }
    }
    Ok(())
}

/// `codestep audit`. Returns the exit code.
pub async fn run_audit(args: AuditArgs, db: StoreArg) -> anyhow::Result<i32> {
    Ok(finish(audit(args, db).await))
}

async fn audit(args: AuditArgs, db: StoreArg) -> Outcome {
    let store = open_store(db).await?;
    let entries = store
        .audit_log(Some(&args.workspace), args.before, args.limit)
        .await?;
    if args.output.json() {
        print_json(&json!(entries.iter().map(audit_json).collect::<Vec<_>>()));
        return Ok(());
    }
    if entries.is_empty() {
        eprintln!("no audit entries");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                store::format_time(e.at),
                e.actor.clone(),
                e.address.clone().unwrap_or_else(|| "-".into()),
                e.action.clone(),
                e.connector.clone().unwrap_or_else(|| "-".into()),
                e.detail.clone(),
            ]
        })
        .collect();
    print_table(
        &[
            "ID",
            "AT",
            "WHO",
            "ADDRESS",
            "ACTION",
            "CONNECTOR",
            "DETAIL",
        ],
        &rows,
    );
    Ok(())
}
