//! `/metrics`: Prometheus metrics from a client library's registry.
//!
//! Labels are bounded by the code, never by user data: a run's `outcome` (ok or an error kind), a
//! fetch's `outcome` (the store's five), an HTTP request's `method` (the usual ones, else `other`),
//! `route` (the route template, or
//! `(unmatched)`) and `status`. Workspaces and connectors are not labels: their number is up to the
//! users, and per-connector counts are in the monitoring API instead.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::engine::{ErrorKind, StepResult};
use crate::store::FetchAttempt;

/// Bucket bounds in seconds, from a fast step to a step at the default wall time.
const RUN_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
const WAIT_BUCKETS: &[f64] = &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];

pub struct Metrics {
    registry: Registry,
    runs: IntCounterVec,
    runs_rejected: IntCounter,
    run_seconds: Histogram,
    queue_wait_seconds: Histogram,
    fetches: IntCounterVec,
    fetch_seconds: HistogramVec,
    http_requests: IntCounterVec,
    workers_busy: IntGauge,
    workers_idle: IntGauge,
    queue_depth: IntGauge,
}

/// The name a run's outcome has as a label.
pub fn outcome_label(result: &StepResult) -> &'static str {
    match result.error.as_ref().map(|e| e.kind) {
        None => "ok",
        Some(ErrorKind::Error) => "error",
        Some(ErrorKind::Timeout) => "timeout",
        Some(ErrorKind::Memory) => "memory",
        Some(ErrorKind::Limit) => "limit",
        Some(ErrorKind::Output) => "output",
        Some(ErrorKind::Input) => "input",
        Some(ErrorKind::Internal) => "internal",
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry =
            Registry::new_custom(Some("codestep".into()), None).expect("a valid metrics prefix");
        fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
            r.register(Box::new(c.clone()))
                .expect("metric names are unique");
            c
        }
        let build = IntGauge::with_opts(
            Opts::new(
                "build_info",
                "Always 1; the labels say which build this is.",
            )
            .const_label("version", env!("CARGO_PKG_VERSION")),
        )
        .expect("valid metric");
        build.set(1);
        reg(&registry, build);
        #[cfg(target_os = "linux")]
        {
            let _ = registry.register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ));
        }
        Metrics {
            runs: reg(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "runs_total",
                        "Steps run, by outcome (ok or the error kind).",
                    ),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            runs_rejected: reg(
                &registry,
                IntCounter::new(
                    "runs_rejected_total",
                    "Runs turned away with 429 because the pool and its queue were full.",
                )
                .expect("valid metric"),
            ),
            run_seconds: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("run_duration_seconds", "Wall time of each step.")
                        .buckets(RUN_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            queue_wait_seconds: reg(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new(
                        "run_queue_wait_seconds",
                        "Time a run waited for a worker (and to reach it) before its step started.",
                    )
                    .buckets(WAIT_BUCKETS.to_vec()),
                )
                .expect("valid metric"),
            ),
            fetches: reg(
                &registry,
                IntCounterVec::new(
                    Opts::new("fetches_total", "Fetch attempts made by steps, by outcome."),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            fetch_seconds: reg(
                &registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "fetch_duration_seconds",
                        "Duration of each fetch, by outcome.",
                    )
                    .buckets(RUN_BUCKETS.to_vec()),
                    &["outcome"],
                )
                .expect("valid metric"),
            ),
            http_requests: reg(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "http_requests_total",
                        "HTTP requests served, by method, route template and status.",
                    ),
                    &["method", "route", "status"],
                )
                .expect("valid metric"),
            ),
            workers_busy: reg(
                &registry,
                IntGauge::new("workers_busy", "Workers running a step now.").expect("valid metric"),
            ),
            workers_idle: reg(
                &registry,
                IntGauge::new("workers_idle", "Workers up and waiting for a step.")
                    .expect("valid metric"),
            ),
            queue_depth: reg(
                &registry,
                IntGauge::new("queue_depth", "Runs admitted and waiting for a worker.")
                    .expect("valid metric"),
            ),
            registry,
        }
    }

    pub fn run_rejected(&self) {
        self.runs_rejected.inc();
    }

    /// One finished run: its outcome, its duration, how long it waited, and its fetches.
    pub fn run(&self, result: &StepResult, waited: std::time::Duration, fetches: &[FetchAttempt]) {
        self.runs.with_label_values(&[outcome_label(result)]).inc();
        self.run_seconds.observe(result.stats.duration_ms / 1000.0);
        self.queue_wait_seconds.observe(waited.as_secs_f64());
        for f in fetches {
            let outcome = f.outcome().as_str();
            self.fetches.with_label_values(&[outcome]).inc();
            self.fetch_seconds
                .with_label_values(&[outcome])
                .observe(f.duration_ms / 1000.0);
        }
    }

    pub fn http_request(&self, method: &str, route: &str, status: u16) {
        // Methods outside the usual set share one label value, so a client cannot grow the series.
        let method = match method {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS" => method,
            _ => "other",
        };
        self.http_requests
            .with_label_values(&[method, route, &status.to_string()])
            .inc();
    }

    /// The Prometheus text for a scrape, with the pool's gauges read now.
    pub fn render(&self, in_flight: usize, workers_alive: usize) -> String {
        let busy = in_flight.min(workers_alive);
        self.workers_busy.set(busy as i64);
        self.workers_idle.set((workers_alive - busy) as i64);
        self.queue_depth.set(in_flight.saturating_sub(busy) as i64);
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
