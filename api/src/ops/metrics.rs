//! Prometheus metrics: request counts and latency by route and status, database pool usage, the
//! generation change listener, and the job queue: how generations end, how long they wait and take,
//! and (read from the database when scraped) what is in the queue now.

use crate::app::AppState;
use actix_web::{HttpResponse, get, web};
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::time::Duration;

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
    /// Whether this process hears generation changes, and how many generations its requests wait on.
    changes_heard: IntGauge,
    changes_watched: IntGauge,
    /// Webhook attempts by outcome: `delivered`, `retrying` (failed, tried again later) or
    /// `given_up` (failed for the last time, or refused).
    webhooks: IntCounterVec,
    /// Generations this process ended, by model, status and error code (`none` when it succeeded).
    finished: IntCounterVec,
    /// Submission to end, by model and status.
    run_time: HistogramVec,
    /// Submission to first claim (the wait for a free worker), by model.
    queue_wait: HistogramVec,
    /// Jobs this process put back in the queue, by reason: `transient` (a provider error worth
    /// another attempt), `worker_lost` (the process running it stopped heartbeating), `released`
    /// (this process was stopping) or `busy` (the provider had no room).
    requeues: IntCounterVec,
    /// The whole queue, as the database has it when scraped: active jobs by status, and how long the
    /// oldest job that is due has waited for a worker.
    queue: IntGaugeVec,
    oldest_due: Gauge,
    /// The pools reported, each with its role: every HTTP worker has one (`http`, summed), and the
    /// process has one for the job runner, the watchdog and housekeeping (`jobs`).
    pools: std::sync::Mutex<Vec<(&'static str, crate::db::Pool)>>,
}

impl Metrics {
    pub fn new() -> prometheus::Result<Self> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests answered, by method, route and status",
            ),
            &["method", "route", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "Time from request to response, by method, route and status",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0,
            ]),
            &["method", "route", "status"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "db_pool_connections",
                "Database pool connections by pool (http: all HTTP workers' pools; jobs: the job \
                 runner's, watchdog's and housekeeping's) and state (in_use, idle, max, waiting)",
            ),
            &["pool", "state"],
        )?;
        let changes_heard = IntGauge::new(
            "generation_changes_heard",
            "1 while this process listens for generation changes (event streams and Prefer: wait \
             are woken by them); 0 while they poll",
        )?;
        let changes_watched = IntGauge::new(
            "generation_changes_watched",
            "Generations that event streams and Prefer: wait requests of this process wait on",
        )?;
        let webhooks = IntCounterVec::new(
            Opts::new(
                "webhook_deliveries_total",
                "Attempts of this process to deliver generations' webhooks, by outcome: delivered, \
                 retrying (failed, tried again later) or given_up",
            ),
            &["outcome"],
        )?;
        let finished = IntCounterVec::new(
            Opts::new(
                "generations_finished_total",
                "Generations this process ended, by model, status (succeeded, failed, canceled) and \
                 error code (none when it succeeded)",
            ),
            &["model", "status", "error"],
        )?;
        let run_time = HistogramVec::new(
            HistogramOpts::new(
                "generation_duration_seconds",
                "Time from a generation's submission to its end, by model and status",
            )
            .buckets(vec![
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
            ]),
            &["model", "status"],
        )?;
        let queue_wait = HistogramVec::new(
            HistogramOpts::new(
                "generation_queue_wait_seconds",
                "Time from a generation's submission until a worker of this process took it up, \
                 by model",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
            ]),
            &["model"],
        )?;
        let requeues = IntCounterVec::new(
            Opts::new(
                "generation_requeues_total",
                "Jobs this process put back in the queue, by reason: transient (a provider error \
                 worth another attempt), worker_lost (its process stopped heartbeating), \
                 released (this process was stopping) or busy (the provider had no room)",
            ),
            &["reason"],
        )?;
        let queue = IntGaugeVec::new(
            Opts::new(
                "generation_jobs",
                "Generations not yet ended, by status (queued, starting, processing), across every \
                 process (read from the database when scraped)",
            ),
            &["status"],
        )?;
        let oldest_due = Gauge::new(
            "generation_oldest_due_seconds",
            "How long the oldest queued generation that is due has waited for a worker, across \
             every process (0 when none waits; read from the database when scraped)",
        )?;
        registry.register(Box::new(finished.clone()))?;
        registry.register(Box::new(run_time.clone()))?;
        registry.register(Box::new(queue_wait.clone()))?;
        registry.register(Box::new(requeues.clone()))?;
        registry.register(Box::new(queue.clone()))?;
        registry.register(Box::new(oldest_due.clone()))?;
        registry.register(Box::new(webhooks.clone()))?;
        registry.register(Box::new(changes_heard.clone()))?;
        registry.register(Box::new(changes_watched.clone()))?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        Ok(Self {
            registry,
            requests,
            latency,
            pool,
            changes_heard,
            changes_watched,
            webhooks,
            finished,
            run_time,
            queue_wait,
            requeues,
            queue,
            oldest_due,
            pools: std::sync::Mutex::default(),
        })
    }

    /// Reports `pool` under `role` from now on, added to the other pools of that role.
    pub fn watch_pool(&self, role: &'static str, pool: &crate::db::Pool) {
        if let Ok(mut pools) = self.pools.lock() {
            pools.push((role, pool.clone()));
        }
    }

    /// `route` is the matched pattern (`/v1/images/{id}`), never the raw path, to bound cardinality.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [method, route, status.as_str()];
        self.requests.with_label_values(&labels).inc();
        self.latency
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Reports the state of the process's change listener (see `generation::changes`).
    pub fn observe_changes(&self, heard: bool, watched: usize) {
        self.changes_heard.set(i64::from(heard));
        self.changes_watched
            .set(i64::try_from(watched).unwrap_or(i64::MAX));
    }

    /// Counts one webhook attempt under `outcome`.
    pub fn observe_webhook(&self, outcome: &str) {
        self.webhooks.with_label_values(&[outcome]).inc();
    }

    /// Counts a generation this process ended, `run_time` after its submission.
    pub fn observe_finished(
        &self,
        model: &str,
        status: &str,
        error: Option<&str>,
        run_time: chrono::TimeDelta,
    ) {
        self.finished
            .with_label_values(&[model, status, error.unwrap_or("none")])
            .inc();
        self.run_time
            .with_label_values(&[model, status])
            .observe(seconds(run_time));
    }

    /// A worker took up a generation for the first time, `waited` after its submission (a retry's
    /// wait is mostly its backoff, and is not counted).
    pub fn observe_claimed(&self, model: &str, waited: chrono::TimeDelta) {
        self.queue_wait
            .with_label_values(&[model])
            .observe(seconds(waited));
    }

    /// Counts a job put back in the queue, for `reason` (`transient`, `worker_lost`, `released` or
    /// `busy`).
    pub fn observe_requeue(&self, reason: &str) {
        self.requeues.with_label_values(&[reason]).inc();
    }

    /// The queue as the database has it now: active jobs by status, and the oldest due job's wait.
    pub fn observe_queue(&self, queue: &crate::generation::store::QueueState) {
        for (status, jobs) in [
            ("queued", queue.queued),
            ("starting", queue.starting),
            ("processing", queue.processing),
        ] {
            self.queue.with_label_values(&[status]).set(jobs);
        }
        self.oldest_due.set(queue.oldest_due_seconds);
    }

    pub fn render(&self) -> String {
        let mut totals: Vec<(&'static str, [usize; 4])> = Vec::new();
        if let Ok(pools) = self.pools.lock() {
            for (role, pool) in pools.iter() {
                let status = pool.status();
                let counts = [
                    status.size.saturating_sub(status.available),
                    status.available,
                    status.max_size,
                    status.waiting,
                ];
                match totals.iter_mut().find(|(r, _)| r == role) {
                    Some((_, sums)) => sums.iter_mut().zip(counts).for_each(|(s, c)| *s += c),
                    None => totals.push((role, counts)),
                }
            }
        }
        for (role, counts) in totals {
            for (state, value) in ["in_use", "idle", "max", "waiting"].into_iter().zip(counts) {
                self.pool
                    .with_label_values(&[role, state])
                    .set(i64::try_from(value).unwrap_or(i64::MAX));
            }
        }
        let mut buffer = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut buffer) {
            tracing::error!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(buffer).unwrap_or_default()
    }
}

/// A duration in seconds, 0 when negative (clocks of different hosts).
fn seconds(delta: chrono::TimeDelta) -> f64 {
    delta.to_std().map_or(0.0, |d| d.as_secs_f64())
}

/// Prometheus text exposition format. With `EASEL_METRICS_TOKEN` set, only for a request that
/// carries it as a bearer token.
#[utoipa::path(
    tag = "ops",
    responses(
        (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
        (status = 401, description = "`EASEL_METRICS_TOKEN` is set and the request does not carry it", body = crate::error::Problem, content_type = "application/problem+json"),
    )
)]
#[get("/metrics")]
pub async fn get_metrics(
    req: actix_web::HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, crate::error::ApiError> {
    if let Some(token) = &state.config.metrics_token {
        let given = crate::identity::principal::bearer(&req).unwrap_or_default();
        let matches: bool =
            subtle::ConstantTimeEq::ct_eq(given.as_bytes(), token.expose().as_bytes()).into();
        if !matches {
            return Err(crate::error::ApiError::new(
                crate::error::ErrorCode::Unauthorized,
                "metrics need the bearer token EASEL_METRICS_TOKEN names",
            ));
        }
    }
    state
        .metrics
        .observe_changes(state.changes.heard(), state.changes.watched_count());
    // The queue is read fresh; if the database does not answer, the last reading stays and the
    // rest of the metrics are still served.
    match queue_state(&state).await {
        Ok(queue) => state.metrics.observe_queue(&queue),
        Err(e) => tracing::warn!(error = %e, "metrics could not read the job queue"),
    }
    let body = state.metrics.render();
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body))
}

async fn queue_state(state: &AppState) -> anyhow::Result<crate::generation::store::QueueState> {
    let mut conn = state.pool.get().await?;
    Ok(crate::generation::store::queue_state(&mut conn).await?)
}
