//! `codestep workspace …`, `codestep connector …` and `codestep key …`: managing stored connectors.
//!
//! Exit codes: 0 success; 1 the operation failed (not found, name conflict, decryption failure, store
//! or network error, `connector test` got no answer or an error status); 2 usage, configuration or
//! validation error. Secrets are write-only: they go in through `--secret-stdin` / `--secret-file`
//! and no command ever prints one.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::json;
use zeroize::Zeroizing;

use super::StoreArg;
use crate::connector::{preset, presets, ConnectorSpec, Placement, PlacementKind, Secret, Secrets};
use crate::store::{self, ConnectorRecord, ConnectorUpdate, Store, StoreError};
use crate::vault::{KeySource, Vault, VaultError};

/// Output format of every management command that prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Human-readable text.
    #[default]
    // `table` was this format's name before every command had `--output`; scripts may still say it.
    #[value(alias = "table")]
    Text,
    /// Machine-readable JSON.
    Json,
}

/// The `--output` flag, shared so that every printing command says the same thing about it.
#[derive(Clone, Copy, Debug, Args)]
pub struct OutputArg {
    /// Output format: text for people, json for scripts.
    #[arg(long = "output", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

impl OutputArg {
    pub(super) fn json(self) -> bool {
        self.format == OutputFormat::Json
    }
}

#[derive(Debug, Subcommand)]
pub enum WorkspaceCmd {
    /// Create a workspace.
    Create {
        /// Workspace name: letters, digits, '-', '_' or '.', up to 64 characters.
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// List workspaces.
    List {
        #[command(flatten)]
        output: OutputArg,
    },
    /// Delete a workspace (with --force, also when it still has connectors, which are deleted with it).
    Delete {
        /// The workspace to delete.
        name: String,
        /// Delete the workspace's connectors too.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Change a workspace's settings.
    Set {
        /// The workspace to change.
        name: String,
        /// Keep each run's input and output in the run history, encrypted at rest with the master key
        /// (on/off; off by default: then only the output's size is kept).
        #[arg(long, value_name = "on|off", action = clap::ArgAction::Set,
              value_parser = clap::builder::BoolishValueParser::new())]
        keep_run_io: bool,
        #[command(flatten)]
        output: OutputArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConnectorCmd {
    /// Store a new connector: a preset, or URL patterns with a placement; the secret from stdin or a file.
    Create(CreateArgs),
    /// List a workspace's connectors (name, patterns, placement, last updated).
    List {
        /// The workspace whose connectors to list.
        #[arg(long)]
        workspace: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Show one connector (never its secret).
    Show {
        /// The connector's workspace.
        #[arg(long)]
        workspace: String,
        /// The connector's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Change a connector's patterns, placement, echo scrubbing or secret; what is not given stays.
    Update(UpdateArgs),
    /// Delete a connector.
    Delete {
        /// The connector's workspace.
        #[arg(long)]
        workspace: String,
        /// The connector's name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        output: OutputArg,
    },
    /// Send one GET through the connector and report the status and timing (never the secret).
    Test(TestArgs),
    /// List the built-in presets: patterns, placement, the secrets and parameters each needs.
    Presets {
        #[command(flatten)]
        output: OutputArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeyCmd {
    /// Add a new master key version (key file) and re-encrypt every secret with the current version,
    /// in one transaction. With CODESTEP_MASTER_KEY, add the new VERSION:BASE64 entry there first.
    Rotate {
        #[command(flatten)]
        output: OutputArg,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("definition").required(true).args(["preset", "pattern"])))]
pub struct CreateArgs {
    /// The workspace to store the connector in.
    #[arg(long)]
    pub workspace: String,
    /// Connector name: letters, digits, '_' or '-', up to 64 characters.
    #[arg(long)]
    pub name: String,
    /// Use a built-in preset's patterns and placement (`codestep connector presets` lists them).
    #[arg(long, conflicts_with_all = ["pattern", "header", "template", "query_param", "placement_json"])]
    pub preset: Option<String>,
    /// A preset parameter (repeatable), like --param region=us-east-1 --param service=sts for aws.
    #[arg(long = "param", value_name = "NAME=VALUE", requires = "preset")]
    pub param: Vec<String>,
    /// A URL pattern the secret may be sent to (repeatable, 1 to 20), like https://api.example.com/v1/*.
    #[arg(long = "pattern", value_name = "URL", requires = "placement")]
    pub pattern: Vec<String>,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Replace echoes of the secret in responses (best effort).
    #[arg(long)]
    pub scrub_echo: bool,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub output: OutputArg,
}

#[derive(Debug, Args)]
#[group(id = "placement", multiple = true)]
pub struct PlacementArgs {
    /// Put the secret in this request header (with --template).
    #[arg(
        long,
        value_name = "NAME",
        requires = "template",
        conflicts_with = "query_param"
    )]
    pub header: Option<String>,
    /// The header value, containing {{secret}}, like 'Bearer {{secret}}' (with --header).
    #[arg(long, value_name = "T", requires = "header")]
    pub template: Option<String>,
    /// Put the secret in this query parameter instead.
    #[arg(long = "query-param", value_name = "NAME")]
    pub query_param: Option<String>,
    /// Any placement as JSON (header with several headers, basic, path, aws_sigv4, methods,
    /// remove_headers), like '{"type":"path","template":"/bot{{secret}}{{path}}"}'.
    #[arg(long = "placement-json", value_name = "JSON", conflicts_with_all = ["header", "template", "query_param"])]
    pub placement_json: Option<String>,
}

impl PlacementArgs {
    fn given(&self) -> bool {
        self.header.is_some() || self.query_param.is_some() || self.placement_json.is_some()
    }

    fn placement(&self) -> Result<Option<Placement>, Failure> {
        if let Some(json) = &self.placement_json {
            return serde_json::from_str(json)
                .map(Some)
                .map_err(|e| Failure::usage(format!("--placement-json: {e}")));
        }
        Ok(match (&self.header, &self.template, &self.query_param) {
            (Some(name), Some(template), None) => {
                Some(Placement::header(name.clone(), template.clone()))
            }
            (None, None, Some(param)) => Some(Placement::query(param.clone())),
            _ => None,
        })
    }
}

#[derive(Debug, Args)]
#[group(id = "secret_source", multiple = false)]
pub struct SecretArgs {
    /// Read the secret from standard input (one trailing newline is dropped).
    #[arg(long)]
    pub secret_stdin: bool,
    /// Read the secret from this file (one trailing newline is dropped).
    #[arg(long, value_name = "F")]
    pub secret_file: Option<PathBuf>,
    /// A named secret (repeatable), read from a file (NAME=@FILE) or standard input (NAME=-, once);
    /// for placements that use {{secret.NAME}}. One trailing newline is dropped.
    #[arg(long = "secret-named", value_name = "NAME=@FILE|NAME=-")]
    pub secret_named: Vec<String>,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The connector's workspace.
    #[arg(long)]
    pub workspace: String,
    /// The connector to change.
    #[arg(long)]
    pub name: String,
    /// Replace all URL patterns with these (repeatable).
    #[arg(long = "pattern", value_name = "URL")]
    pub pattern: Vec<String>,
    #[command(flatten)]
    pub placement: PlacementArgs,
    /// Turn echo scrubbing on or off.
    #[arg(long, value_name = "BOOL")]
    pub scrub_echo: Option<bool>,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub output: OutputArg,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The connector's workspace.
    #[arg(long)]
    pub workspace: String,
    /// The connector to send the request through.
    #[arg(long)]
    pub name: String,
    /// The URL to GET; it must match one of the connector's patterns.
    pub url: String,
    #[command(flatten)]
    pub net: super::NetArgs,
    /// Give up after this many milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub output: OutputArg,
}

/// A failure with its exit code; the message is printed as `codestep: MESSAGE`.
pub(super) struct Failure {
    pub(super) code: i32,
    pub(super) message: String,
}

impl Failure {
    pub(super) fn usage(message: impl Into<String>) -> Failure {
        Failure {
            code: 2,
            message: message.into(),
        }
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Failure {
        let code = match &e {
            StoreError::Invalid(_) | StoreError::Config(_) | StoreError::Schema(_) => 2,
            StoreError::Vault {
                source: VaultError::KeyConfig(_),
                ..
            } => 2,
            _ => 1,
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

impl From<VaultError> for Failure {
    fn from(e: VaultError) -> Failure {
        let code = if matches!(e, VaultError::KeyConfig(_)) {
            2
        } else {
            1
        };
        Failure {
            code,
            message: e.to_string(),
        }
    }
}

pub(super) type Outcome = Result<(), Failure>;

pub(super) fn finish(outcome: Outcome) -> i32 {
    match outcome {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("codestep: {}", f.message);
            f.code
        }
    }
}

/// Who the audit trail records for CLI changes.
pub(crate) fn actor() -> store::Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid{}", unsafe { libc::getuid() }));
    store::Actor::new(format!("cli:{user}"), None)
}

pub(super) async fn open_store(db: StoreArg) -> Result<Arc<dyn Store>, Failure> {
    Ok(db.open().await?)
}

/// Loads the vault from an existing key (never creates one).
fn load_vault() -> Result<Vault, Failure> {
    Ok(Vault::load(&store::default_key_file(), false)?.vault)
}

/// Loads the vault, creating a key file when there is none, and runs `work` with it. A key file made
/// here is removed again when `work` fails: a command that fails leaves no key behind. It is announced
/// only once the command succeeded.
async fn load_vault_for<T, Fut>(work: impl FnOnce(Vault) -> Fut) -> Result<T, Failure>
where
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let loaded = Vault::load(&store::default_key_file(), true)?;
    let created = loaded.created_key_file;
    let result = work(loaded.vault).await;
    if let Some(path) = &created {
        if result.is_err() {
            let _ = std::fs::remove_file(path);
        } else {
            eprintln!(
                "codestep: created a new master key file at {} (mode 0600). Back it up: stored secrets cannot be decrypted without it.",
                path.display()
            );
        }
    }
    result
}

fn strip_one_newline(s: &mut Zeroizing<String>) {
    if s.ends_with("\r\n") {
        let n = s.len() - 2;
        s.truncate(n);
    } else if s.ends_with('\n') {
        let n = s.len() - 1;
        s.truncate(n);
    }
}

/// Reads one secret from standard input or a file; `from` names the option for messages.
fn read_one(stdin: bool, file: Option<&std::path::Path>, from: &str) -> Result<Secret, Failure> {
    let bytes = if stdin {
        let mut buf = Zeroizing::new(Vec::with_capacity(16 * 1024));
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::usage(format!("{from}: cannot read standard input: {e}")))?;
        buf
    } else {
        let path = file.expect("a file when not stdin");
        Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| Failure::usage(format!("{from}: cannot read the file: {e}")))?,
        )
    };
    let mut text = Zeroizing::new(
        std::str::from_utf8(&bytes)
            .map_err(|_| Failure::usage(format!("{from}: the secret must be UTF-8 text")))?
            .to_string(),
    );
    strip_one_newline(&mut text);
    Ok(Secret::new(std::mem::take(&mut *text)))
}

/// Reads the secrets from where `args` says; `None` if no option was given.
fn read_secret(args: &SecretArgs) -> Result<Option<Secrets>, Failure> {
    if args.secret_stdin {
        return read_one(true, None, "--secret-stdin").map(|s| Some(s.into()));
    }
    if let Some(path) = &args.secret_file {
        let from = format!("--secret-file {}", path.display());
        return read_one(false, Some(path), &from).map(|s| Some(s.into()));
    }
    if args.secret_named.is_empty() {
        return Ok(None);
    }
    let mut set = Secrets::new();
    let mut stdin_used = false;
    for arg in &args.secret_named {
        let Some((name, source)) = arg.split_once('=') else {
            return Err(Failure::usage(format!(
                "--secret-named {arg:?}: give NAME=@FILE or NAME=- (the secret is never taken as an argument)"
            )));
        };
        let from = format!("--secret-named {name}");
        if set.get(name).is_some() {
            return Err(Failure::usage(format!("{from}: given twice")));
        }
        let secret = if source == "-" {
            if stdin_used {
                return Err(Failure::usage(format!(
                    "{from}: only one secret can come from standard input"
                )));
            }
            stdin_used = true;
            read_one(true, None, &from)?
        } else if let Some(path) = source.strip_prefix('@') {
            read_one(false, Some(std::path::Path::new(path)), &from)?
        } else {
            return Err(Failure::usage(format!(
                "{from}: give NAME=@FILE or NAME=- (the secret is never taken as an argument)"
            )));
        };
        set.insert(name, secret);
    }
    Ok(Some(set))
}

fn placement_text(p: &Placement) -> String {
    let mut out = match &p.kind {
        PlacementKind::Header { headers } => headers
            .iter()
            .map(|h| format!("header {}: {}", h.name, h.template))
            .collect::<Vec<_>>()
            .join("; "),
        PlacementKind::Query { param, value } => format!("query ?{param}={value}"),
        PlacementKind::Basic { username, password } => format!("basic {username}:{password}"),
        PlacementKind::Path { template } => format!("path {template}"),
        PlacementKind::AwsSigv4 { region, service } => format!("aws_sigv4 {region}/{service}"),
    };
    if !p.methods.is_empty() {
        out.push_str(&format!("; methods {}", p.methods.join(",")));
    }
    if !p.remove_headers.is_empty() {
        out.push_str(&format!("; removes {}", p.remove_headers.join(",")));
    }
    out
}

fn connector_json(r: &ConnectorRecord) -> serde_json::Value {
    json!({
        "name": r.name,
        "workspace": r.workspace_name,
        "patterns": r.patterns,
        "placement": r.placement,
        "scrub_echo": r.scrub_echo,
        "secret": { "set": true, "names": r.placement.secret_names(), "key_version": r.sealed.key_version },
        "created_at": store::format_time(r.created_at),
        "updated_at": store::format_time(r.updated_at),
    })
}

fn workspace_json(ws: &store::Workspace, connectors: usize) -> serde_json::Value {
    json!({"name": ws.name, "connectors": connectors, "created_at": store::format_time(ws.created_at),
           "keep_run_io": ws.keep_run_io})
}

pub(super) fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("JSON values always serialise")
    );
}

/// Prints rows as columns separated by two spaces (the last column is not padded).
pub(super) fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let last = cells.len() - 1;
        let mut out = String::new();
        for (i, cell) in cells.into_iter().enumerate() {
            if i == last {
                out.push_str(&cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                out.push_str(&cell);
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let _ = writeln!(
        out,
        "{}",
        line(header.iter().map(|h| h.to_string()).collect())
    );
    for row in rows {
        let _ = writeln!(out, "{}", line(row.clone()));
    }
}

/// `codestep workspace …`. Returns the exit code.
pub async fn run_workspace(cmd: WorkspaceCmd, db: StoreArg) -> anyhow::Result<i32> {
    Ok(finish(workspace(cmd, db).await))
}

async fn workspace(cmd: WorkspaceCmd, db: StoreArg) -> Outcome {
    match cmd {
        WorkspaceCmd::Create { name, output } => {
            store::validate_workspace_name(&name)?;
            let store = open_store(db).await?;
            let ws = store.create_workspace(&name, &actor()).await?;
            if output.json() {
                print_json(&workspace_json(&ws, 0));
            } else {
                println!("created workspace {:?}", ws.name);
            }
        }
        WorkspaceCmd::List { output } => {
            let store = open_store(db).await?;
            let mut rows = Vec::new();
            for ws in store.list_workspaces().await? {
                let n = store
                    .list_connectors(&ws.name)
                    .await
                    .map(|c| c.len())
                    .unwrap_or(0);
                rows.push((ws, n));
            }
            match output.format {
                OutputFormat::Json => print_json(&serde_json::Value::Array(
                    rows.iter().map(|(ws, n)| workspace_json(ws, *n)).collect(),
                )),
                OutputFormat::Text => print_table(
                    &["NAME", "CONNECTORS", "CREATED"],
                    &rows
                        .iter()
                        .map(|(ws, n)| {
                            vec![
                                ws.name.clone(),
                                n.to_string(),
                                store::format_time(ws.created_at),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
        }
        WorkspaceCmd::Set {
            name,
            keep_run_io,
            output,
        } => {
            let store = open_store(db).await?;
            let ws = store.set_keep_run_io(&name, keep_run_io, &actor()).await?;
            let connectors = store.list_connectors(&ws.name).await?.len();
            if output.json() {
                print_json(&workspace_json(&ws, connectors));
            } else {
                println!(
                    "workspace {:?}: run input and output are {}",
                    ws.name,
                    if ws.keep_run_io {
                        "kept, encrypted"
                    } else {
                        "not kept"
                    }
                );
            }
        }
        WorkspaceCmd::Delete {
            name,
            force,
            output,
        } => {
            let store = open_store(db).await?;
            let connectors = store.list_connectors(&name).await?;
            if !connectors.is_empty() && !force {
                return Err(Failure::usage(format!(
                    "--force: workspace {name:?} still has {} connector(s); pass --force to delete them with it",
                    connectors.len()
                )));
            }
            let deleted = store.delete_workspace(&name, &actor()).await?;
            if output.json() {
                print_json(
                    &json!({"workspace": name, "deleted": true, "connectors_deleted": deleted}),
                );
            } else {
                println!("deleted workspace {name:?} ({deleted} connector(s) deleted with it)");
            }
        }
    }
    Ok(())
}

/// `codestep connector …`. Returns the exit code.
pub async fn run_connector(cmd: ConnectorCmd, db: StoreArg) -> anyhow::Result<i32> {
    Ok(finish(connector(cmd, db).await))
}

async fn connector(cmd: ConnectorCmd, db: StoreArg) -> Outcome {
    match cmd {
        ConnectorCmd::Create(args) => create(args, db).await,
        ConnectorCmd::List { workspace, output } => {
            let store = open_store(db).await?;
            let list = store.list_connectors(&workspace).await?;
            match output.format {
                OutputFormat::Json => print_json(&serde_json::Value::Array(
                    list.iter().map(connector_json).collect(),
                )),
                OutputFormat::Text => print_table(
                    &["NAME", "PATTERNS", "PLACEMENT", "UPDATED"],
                    &list
                        .iter()
                        .map(|r| {
                            vec![
                                r.name.clone(),
                                r.patterns.join(" "),
                                placement_text(&r.placement),
                                store::format_time(r.updated_at),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
            Ok(())
        }
        ConnectorCmd::Show {
            workspace,
            name,
            output,
        } => {
            let store = open_store(db).await?;
            let r = store.connector(&workspace, &name).await?;
            match output.format {
                OutputFormat::Json => print_json(&connector_json(&r)),
                OutputFormat::Text => {
                    println!("name:        {}", r.name);
                    println!("workspace:   {}", r.workspace_name);
                    for (i, p) in r.patterns.iter().enumerate() {
                        println!(
                            "{}{p}",
                            if i == 0 {
                                "patterns:    "
                            } else {
                                "             "
                            }
                        );
                    }
                    println!("placement:   {}", placement_text(&r.placement));
                    println!("scrub_echo:  {}", r.scrub_echo);
                    println!(
                        "secret:      set, write-only (encrypted with master key version {})",
                        r.sealed.key_version
                    );
                    println!("created:     {}", store::format_time(r.created_at));
                    println!("updated:     {}", store::format_time(r.updated_at));
                }
            }
            Ok(())
        }
        ConnectorCmd::Update(args) => update(args, db).await,
        ConnectorCmd::Delete {
            workspace,
            name,
            output,
        } => {
            let store = open_store(db).await?;
            store.delete_connector(&workspace, &name, &actor()).await?;
            if output.json() {
                print_json(&json!({"workspace": workspace, "connector": name, "deleted": true}));
            } else {
                println!("deleted connector {name:?} from workspace {workspace:?}");
            }
            Ok(())
        }
        ConnectorCmd::Test(args) => test(args, db).await,
        ConnectorCmd::Presets { output } => {
            match output.format {
                OutputFormat::Json => {
                    print_json(&serde_json::to_value(presets()).expect("presets serialise"))
                }
                OutputFormat::Text => print_table(
                    &["ID", "NAME", "PLACEMENT", "SECRETS", "PARAMS"],
                    &presets()
                        .iter()
                        .map(|p| {
                            vec![
                                p.id.clone(),
                                p.name.clone(),
                                placement_text(&p.placement),
                                p.secrets
                                    .iter()
                                    .map(|s| s.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(","),
                                p.params
                                    .iter()
                                    .map(|s| s.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(","),
                            ]
                        })
                        .collect::<Vec<_>>(),
                ),
            }
            Ok(())
        }
    }
}

fn no_secret_source() -> Failure {
    Failure::usage("--secret-stdin, --secret-file or --secret-named: one is required (the secret is never taken as an argument)")
}

async fn create(args: CreateArgs, db: StoreArg) -> Outcome {
    let (patterns, placement) = match &args.preset {
        Some(name) => {
            let mut params = std::collections::BTreeMap::new();
            for p in &args.param {
                let (k, v) = p
                    .split_once('=')
                    .ok_or_else(|| Failure::usage(format!("--param {p:?}: give NAME=VALUE")))?;
                params.insert(k.to_string(), v.to_string());
            }
            preset(name, &params).map_err(|m| Failure::usage(format!("--preset: {m}")))?
        }
        None => {
            let placement = args.placement.placement()?.ok_or_else(|| {
                Failure::usage("--header with --template, --query-param or --placement-json: one placement is required with --pattern")
            })?;
            (args.pattern.clone(), placement)
        }
    };
    let spec = ConnectorSpec {
        name: args.name.clone(),
        patterns,
        placement,
        scrub_echo: args.scrub_echo,
    };
    // Check the definition before reading the secret or touching the store.
    spec.check().map_err(|e| Failure::usage(e.to_string()))?;
    let secret = read_secret(&args.secret)?.ok_or_else(no_secret_source)?;
    let store = open_store(db).await?;
    store.workspace(&args.workspace).await?;
    let rec = load_vault_for(|vault| async move {
        Ok(
            store::create_connector(&*store, &vault, &args.workspace, &spec, secret, &actor())
                .await?,
        )
    })
    .await?;
    if args.output.json() {
        print_json(&connector_json(&rec));
    } else {
        println!(
            "created connector {:?} in workspace {:?}",
            rec.name, rec.workspace_name
        );
    }
    Ok(())
}

async fn update(args: UpdateArgs, db: StoreArg) -> Outcome {
    let placement = args.placement.placement()?;
    if args.placement.given() {
        // clap enforced the pairs; this only guards against a half-given placement.
        placement.as_ref().ok_or_else(|| {
            Failure::usage("--header with --template, or --query-param: give one placement")
        })?;
    }
    let secret = read_secret(&args.secret)?;
    let update = ConnectorUpdate {
        patterns: (!args.pattern.is_empty()).then(|| args.pattern.clone()),
        placement,
        scrub_echo: args.scrub_echo,
        secrets: secret,
    };
    if update.is_empty() {
        return Err(Failure::usage(
            "nothing to change: give --pattern, --header/--template, --query-param, --placement-json, --scrub-echo, --secret-stdin, --secret-file or --secret-named",
        ));
    }
    let store = open_store(db).await?;
    let with_secret = update.secrets.is_some();
    let apply = |vault: Vault| async move {
        Ok(store::update_connector(
            &*store,
            &vault,
            &args.workspace,
            &args.name,
            update,
            &actor(),
        )
        .await?)
    };
    let rec = if with_secret {
        load_vault_for(apply).await?
    } else {
        // Not used to decrypt or encrypt anything: only the definition changes.
        apply(Vault::new(crate::vault::Keyring::new(vec![
            crate::vault::MasterKey::generate(1)?,
        ])?))
        .await?
    };
    if args.output.json() {
        print_json(&connector_json(&rec));
    } else {
        println!(
            "updated connector {:?} in workspace {:?}",
            rec.name, rec.workspace_name
        );
    }
    Ok(())
}

async fn test(args: TestArgs, db: StoreArg) -> Outcome {
    let url = url::Url::parse(&args.url)
        .map_err(|e| Failure::usage(format!("URL {:?}: not a valid URL: {e}", args.url)))?;
    let egress_config = args
        .net
        .egress_config()
        .map_err(|e| Failure::usage(e.to_string()))?;
    let store = open_store(db).await?;
    let record = store.connector(&args.workspace, &args.name).await?;
    let vault = load_vault()?;
    let (workspace, mut connectors) = store::load_run(
        &*store,
        &vault,
        &args.workspace,
        std::slice::from_ref(&record.name),
    )
    .await?;
    let connector = connectors.remove(0);
    if !connector.matches(&url) {
        return Err(Failure::usage(format!(
            "URL: {} does not match any pattern of connector {:?} ({})",
            crate::egress::probe::without_query(&url),
            connector.name,
            record.patterns.join(", ")
        )));
    }
    let egress =
        crate::egress::Egress::new(egress_config).map_err(|e| Failure::usage(e.to_string()))?;
    let (report, fetch_record) = egress
        .probe(&connector, &url, Duration::from_millis(args.timeout_ms))
        .await;
    // A test uses the secret like a step does, and monitoring counts every use.
    store
        .record_fetch_attempts(
            Some(&workspace.id),
            &[store::FetchAttempt::from_record(&fetch_record, None)],
        )
        .await?;
    match args.output.format {
        OutputFormat::Json => print_json(&json!(report)),
        OutputFormat::Text => {
            if let Some(status) = report.status {
                println!(
                    "GET {} -> {} {} in {:.0} ms ({} redirect(s)) through connector {:?}",
                    report.url,
                    status,
                    report.status_text.as_deref().unwrap_or(""),
                    report.duration_ms,
                    report.redirects,
                    report.connector
                );
                if let Some(excerpt) = &report.excerpt {
                    println!("upstream said: {excerpt}");
                }
            }
        }
    }
    if report.ok {
        return Ok(());
    }
    Err(Failure {
        code: 1,
        message: match (report.status, &report.error) {
            (Some(status), _) => format!(
                "the upstream answered {status} {}",
                report.status_text.as_deref().unwrap_or("")
            ),
            (None, error) => format!(
                "GET through connector {:?} failed after {:.0} ms: {}",
                report.connector,
                report.duration_ms,
                error.as_deref().unwrap_or("no answer")
            ),
        },
    })
}

/// `codestep key …`. Returns the exit code.
pub async fn run_key(cmd: KeyCmd, db: StoreArg) -> anyhow::Result<i32> {
    Ok(finish(key(cmd, db).await))
}

async fn key(cmd: KeyCmd, db: StoreArg) -> Outcome {
    match cmd {
        KeyCmd::Rotate { output } => {
            let store = open_store(db).await?;
            let vault = load_vault()?;
            let (vault, report) = store::rotate_keys(&*store, &vault, &actor(), None).await?;
            if output.json() {
                print_json(&json!({
                    "version": report.version,
                    "added_version": report.added_version,
                    "key_source": vault.origin(),
                    "reencrypted": report.reencrypted,
                    "runs_reencrypted": report.runs_reencrypted,
                }));
            } else {
                if report.added_version {
                    println!(
                        "added master key version {} to {}",
                        report.version,
                        vault.origin()
                    );
                }
                println!(
                    "re-encrypted {} secret(s) with master key version {}",
                    report.reencrypted, report.version
                );
                if report.runs_reencrypted > 0 {
                    println!(
                        "re-encrypted the kept input and output of {} run(s)",
                        report.runs_reencrypted
                    );
                }
            }
            if *vault.source() == KeySource::Env && vault.versions().len() == 1 {
                eprintln!(
                    "codestep: note: {} holds one key version, so no new key was used. To rotate, set it to \
                     'NEW_VERSION:NEW_BASE64,{}:OLD_BASE64', run `codestep key rotate`, then drop the old entry.",
                    crate::vault::MASTER_KEY_ENV,
                    report.version
                );
            } else if *vault.source() == KeySource::Env {
                eprintln!(
                    "codestep: every secret now uses version {}; older entries can be removed from {}",
                    report.version,
                    crate::vault::MASTER_KEY_ENV
                );
            }
            Ok(())
        }
    }
}
