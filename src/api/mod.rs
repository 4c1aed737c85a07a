//! `codestep serve`: the orchestrator's HTTP API, connector management, monitoring and the dashboard.
//!
//! Handlers are thin: they check who is calling (`auth`), call the store, vault or executor, and
//! return JSON. Every error goes through `error::ApiError`, the one place errors become responses.

mod access;
mod audit;
mod auth;
mod connectors;
mod error;
mod history;
mod json;
mod metrics;
mod monitoring;
mod probe;
mod runs;
mod scopes;
mod state;
mod system;
mod tokens;
mod workspaces;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::sync::Semaphore;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;
use state::{AppState, Inner};

use crate::engine::Executor;
use crate::store::{hash_api_token, Store};
use crate::vault::Vault;

/// The largest request body the API reads (a step's code and input included).
pub const DEFAULT_MAX_BODY: usize = 2 * 1024 * 1024;

pub struct ServeOptions {
    pub listen: SocketAddr,
    /// How many runs may wait for a worker before new ones get 429.
    pub queue: usize,
    pub retention_days: u32,
    /// How often old fetch records are pruned.
    pub retention_every: Duration,
    pub max_body_bytes: usize,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "codestep", description = "Runs untrusted workflow code steps; their fetch reaches the network only through connectors."),
    modifiers(&BearerAuth),
    servers((url = "/", description = "this server")),
    tags(
        (name = "runs", description = "Running steps, and the history of what ran."),
        (name = "connectors", description = "A workspace's connectors: where each secret may go and how it is placed."),
        (name = "monitoring", description = "Requests and errors per connector, and requests no connector allowed."),
        (name = "workspaces", description = "Workspaces (operator token)."),
        (name = "tokens", description = "A workspace's API tokens and their scopes."),
        (name = "audit", description = "Who changed what in a workspace, and from where."),
        (name = "auth", description = "Who a token is."),
        (name = "system", description = "Health checks and metrics for operators.")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The API's routes and their OpenAPI document, built from the same handler annotations so the two
/// cannot drift apart.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(system::health))
        .routes(routes!(system::metrics))
        .routes(routes!(workspaces::me))
        .routes(routes!(workspaces::list, workspaces::create))
        .routes(routes!(workspaces::delete, workspaces::update))
        .routes(routes!(tokens::list, tokens::create))
        .routes(routes!(tokens::revoke))
        .routes(routes!(audit::list))
        .routes(routes!(runs::run, history::list))
        .routes(routes!(history::get))
        .routes(routes!(connectors::list_presets))
        .routes(routes!(connectors::list, connectors::create))
        .routes(routes!(
            connectors::get,
            connectors::update,
            connectors::delete
        ))
        .routes(routes!(probe::test))
        .routes(routes!(monitoring::stats))
        .routes(routes!(monitoring::errors))
        .routes(routes!(monitoring::blocked))
}

/// The OpenAPI document the server serves at `/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    with_extractor_errors(api_routes().into_openapi())
}

/// Adds the errors the shared extractors answer with, to every operation that uses them, so no
/// handler's annotation can forget one: `Caller` (401), `ApiJson` (400, 413, 415, 422) and
/// `ApiPath` / `ApiQuery` (400).
fn with_extractor_errors(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    for item in doc.paths.paths.values_mut() {
        let ops = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.patch,
            &mut item.delete,
        ];
        for op in ops.into_iter().flatten() {
            let mut errors = Vec::new();
            if op.security.is_some() {
                errors.push(("401", "no token, or not a valid one"));
            }
            let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
            if op.request_body.is_some() || has_params {
                errors.push(("400", "malformed input: the body is not JSON, or a path or query parameter does not parse"));
            }
            if op.request_body.is_some() {
                errors.push(("413", "the body is larger than the server takes"));
                errors.push(("415", "the body is not `application/json`"));
                errors.push(("422", "the body does not fit its schema, or breaks a rule"));
            }
            for (status, description) in errors {
                op.responses
                    .responses
                    .entry(status.to_string())
                    .or_insert_with(|| {
                        ResponseBuilder::new()
                            .description(description)
                            .content(
                                "application/json",
                                ContentBuilder::new()
                                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                                    .build(),
                            )
                            .build()
                            .into()
                    });
            }
        }
    }
    doc
}

pub fn router(state: AppState, max_body_bytes: usize) -> Router {
    let (api, doc) = api_routes().split_for_parts();
    let doc = Arc::new(with_extractor_errors(doc));
    api.route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { axum::Json((*doc).clone()) }
        }),
    )
    .route("/", get(system::dashboard_index))
    .route("/app.js", get(system::dashboard_js))
    .route("/style.css", get(system::dashboard_css))
    .route("/favicon.svg", get(system::dashboard_favicon))
    .fallback(|| async { ApiError::not_found("no such endpoint") })
    .method_not_allowed_fallback(|| async {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this endpoint does not take that method",
        )
    })
    .layer(DefaultBodyLimit::max(max_body_bytes))
    .layer(axum::middleware::from_fn_with_state(
        state.clone(),
        access::log,
    ))
    .with_state(state)
}

pub fn state(
    store: Arc<dyn Store>,
    vault: Vault,
    executor: Arc<Executor>,
    operator_token: &str,
    opts: &ServeOptions,
) -> AppState {
    let admission_size = executor.workers() + opts.queue;
    AppState(Arc::new(Inner {
        store,
        vault,
        executor,
        admission: Arc::new(Semaphore::new(admission_size)),
        admission_size,
        operator_token_hash: hash_api_token(operator_token),
        metrics: metrics::Metrics::new(),
        retention_days: opts.retention_days,
    }))
}

/// Serves on `listener` (bound to `opts.listen`) until SIGTERM or Ctrl-C, then stops taking
/// connections and lets running steps finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    opts: ServeOptions,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    tokio::spawn(retention_loop(state.clone(), opts.retention_every));
    let app = router(state, opts.max_body_bytes);
    println!("listening on http://{addr}");
    use std::io::Write as _;
    let _ = std::io::stdout().flush();
    // The client's address goes into the audit trail.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await?;
    tracing::info!("stopped; running steps were drained");
    Ok(())
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = term => {},
        _ = tokio::signal::ctrl_c() => {},
    }
    tracing::info!("shutting down: no new requests; waiting for running steps");
}

/// Deletes fetch records older than the retention, in small batches, every few minutes. Runs beside
/// the steps: each batch is its own short transaction, so recording never waits long.
async fn retention_loop(state: AppState, every: Duration) {
    let retention_ms = i64::from(state.retention_days) * 24 * 3_600_000;
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let cutoff = monitoring::window_start() + 24 * 3_600_000 - retention_ms;
        match state.store.prune_fetch_attempts(cutoff, 1_000).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(
                deleted = n,
                retention_days = state.retention_days,
                "retention: deleted old fetch records"
            ),
            Err(e) => tracing::error!(error = %e, "retention failed"),
        }
    }
}
