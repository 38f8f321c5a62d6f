//! `easel serve`: migrate, bind, serve until SIGINT/SIGTERM, then finish in-flight requests and exit.

use crate::app::{self, Shared};
use crate::config::Config;
use crate::db;
use actix_web::HttpServer;
use actix_web::dev::{Server, ServerHandle};
use std::net::SocketAddr;

/// A bound, not yet awaited server: the address it listens on, a handle to stop it, and the future
/// that runs it.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub server: Server,
    pub shared: Shared,
    /// The job runner, when this process runs jobs.
    pub jobs: Option<crate::generation::runner::Jobs>,
}

/// Runs pending migrations, builds the pool and binds `config.bind` (port 0 picks a free port).
pub async fn start(mut config: Config) -> anyhow::Result<Running> {
    let applied = db::migrate::run_pending(config.database_url.expose()).await?;
    if !applied.is_empty() {
        tracing::info!(versions = ?applied, "applied migrations");
    }
    std::fs::create_dir_all(&config.data_dir).map_err(|e| {
        anyhow::anyhow!(
            "cannot create EASEL_DATA_DIR {}: {e}",
            config.data_dir.display()
        )
    })?;
    let pool = db::pool(config.database_url.expose(), config.db_pool_size)?;
    let workers = if config.workers > 0 {
        config.workers
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    };
    // Each HTTP worker thread runs its own event loop, and a connection's I/O runs on the loop that
    // opened it: with one pool for all workers, about half the queries went through another
    // thread's loop, two wake-ups each (10-25% of gallery pages per second). So each worker has a
    // pool of its own, a share of EASEL_DB_POOL_SIZE; the job runner keeps the process's pool.
    let per_worker = (config.db_pool_size / workers).max(2);
    let worker_pools = (0..workers)
        .map(|_| db::pool(config.database_url.expose(), per_worker))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let worker_pools = std::sync::Arc::new(std::sync::Mutex::new(worker_pools));
    let bind = config.bind;
    let listener = std::net::TcpListener::bind(bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on EASEL_BIND {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    // With port 0 (tests) the default public URL only becomes known once bound; providers' webhooks
    // need the real one.
    if config.public_url == format!("http://{bind}") {
        config.public_url = format!("http://{addr}");
    }
    let shutdown_timeout = config.shutdown_timeout.as_secs();
    let job_workers = config.generation.workers;
    let shared = Shared::new(config, pool.clone())?;
    spawn_housekeeping(pool);
    crate::generation::changes::spawn_listener(
        std::sync::Arc::clone(&shared.state.changes),
        shared.state.config.database_url.expose().to_owned(),
    );
    let jobs = (job_workers > 0)
        .then(|| crate::generation::runner::spawn(shared.state.clone().into_inner(), job_workers));
    let factory_shared = shared.clone();
    let server = HttpServer::new(move || {
        // actix builds one App per worker (again for a worker it restarts, which then shares the
        // process's pool).
        let own = worker_pools.lock().ok().and_then(|mut pools| pools.pop());
        match own {
            Some(pool) => app::build(factory_shared.with_pool(pool)),
            None => app::build(factory_shared.clone()),
        }
    })
    .shutdown_timeout(shutdown_timeout)
    // `serve` stops it on a signal: actix's own handling stops at once on SIGINT, dropping the
    // requests under way.
    .disable_signals()
    .workers(workers);
    let server = server
        .listen(listener)
        .map_err(|e| anyhow::anyhow!("cannot listen on EASEL_BIND {bind}: {e}"))?
        .run();
    Ok(Running {
        addr,
        handle: server.handle(),
        server,
        shared,
        jobs,
    })
}

/// Hourly upkeep that needs no caller: expired idempotency keys are purged.
fn spawn_housekeeping(pool: db::Pool) {
    tokio::spawn(async move {
        let mut every_hour = tokio::time::interval(std::time::Duration::from_secs(3600));
        loop {
            every_hour.tick().await;
            let purged = match pool.get().await {
                Ok(mut conn) => crate::http::idempotency::purge_expired(&mut conn)
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::anyhow!("{e}")),
            };
            match purged {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired idempotency keys purged"),
                Err(e) => tracing::warn!(error = %e, "idempotency key purge failed"),
            }
        }
    });
}

/// `easel worker`: job workers and the watchdog, without the API, until Ctrl-C or SIGTERM, when it
/// drains its jobs (a worker killed outright has its jobs picked up again once their heartbeats go
/// stale). With `EASEL_WORKER_BIND` it
/// answers `/healthz` and `/metrics` there, for a liveness probe and for its jobs' counters.
pub async fn work(config: Config) -> anyhow::Result<()> {
    let running = start_worker(config).await?;
    if let Some(addr) = running.addr {
        tracing::info!(%addr, "worker metrics listening");
    }
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("stopping");
    let grace = running.shared.state.config.shutdown_timeout;
    running.jobs.drain(grace).await;
    if let Some(handle) = running.handle {
        handle.stop(true).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// A started `easel worker`: where its health and metrics listener is, if it has one.
pub struct Worker {
    pub addr: Option<SocketAddr>,
    pub handle: Option<ServerHandle>,
    pub shared: Shared,
    pub jobs: crate::generation::runner::Jobs,
}

/// Runs pending migrations, starts the job workers and the watchdog, and binds `EASEL_WORKER_BIND`
/// when set (port 0 picks a free port).
pub async fn start_worker(config: Config) -> anyhow::Result<Worker> {
    db::migrate::run_pending(config.database_url.expose()).await?;
    let pool = db::pool(config.database_url.expose(), config.db_pool_size)?;
    let workers = config.generation.workers.max(1);
    let bind = config.worker_bind;
    let shared = Shared::new(config, pool)?;
    let jobs = crate::generation::runner::spawn(shared.state.clone().into_inner(), workers);
    tracing::info!(workers, "job workers running");
    let Some(bind) = bind else {
        return Ok(Worker {
            addr: None,
            handle: None,
            shared,
            jobs,
        });
    };
    let listener = std::net::TcpListener::bind(bind)
        .map_err(|e| anyhow::anyhow!("cannot listen on EASEL_WORKER_BIND {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    let state = shared.state.clone();
    let server = HttpServer::new(move || {
        actix_web::App::new()
            .app_data(state.clone())
            .service(crate::ops::health::get_health)
            .service(crate::ops::metrics::get_metrics)
            .default_service(actix_web::web::to(worker_no_route))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(server);
    Ok(Worker {
        addr: Some(addr),
        handle: Some(handle),
        shared,
        jobs,
    })
}

/// A worker serves only its health and metrics: anything else is a problem+json 404.
async fn worker_no_route(
    req: actix_web::HttpRequest,
) -> Result<actix_web::HttpResponse, crate::error::ApiError> {
    Err(crate::error::ApiError::new(
        crate::error::ErrorCode::NotFound,
        format!(
            "no route matches {} {}; a worker serves only /healthz and /metrics",
            req.method(),
            req.path()
        ),
    ))
}

/// Serves until SIGINT (Ctrl-C) or SIGTERM: then it stops accepting, lets in-flight requests finish
/// (up to `EASEL_SHUTDOWN_TIMEOUT_SECS`) and the server future resolves. Running jobs then get as
/// long again to finish (see [`crate::generation::runner::Jobs::drain`]).
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let public_url = config.public_url.clone();
    let shutdown_timeout = config.shutdown_timeout;
    let running = start(config).await?;
    let handle = running.handle.clone();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("stopping: requests under way finish first");
        handle.stop(true).await;
    });
    tracing::info!(addr = %running.addr, "listening");
    println!(
        "Easel is serving on http://{} (public URL {public_url})",
        running.addr
    );
    running.server.await?;
    // Requests are done; running jobs finish, or go back to the queue for another process.
    if let Some(jobs) = running.jobs {
        jobs.drain(shutdown_timeout).await;
    }
    tracing::info!("stopped");
    Ok(())
}
