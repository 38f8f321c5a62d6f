//! Builds the actix `App` from every feature's routes. Shared by `serve`, `openapi` and the tests, so
//! the spec and the router can never disagree.

use crate::config::Config;
use crate::db::Pool;
use crate::http::rate_limit::{InMemoryStore, RateLimit, RateLimitStore};
use crate::http::{edge::Edge, extract, fallback};
use crate::identity;
use crate::ops::{self, metrics::Metrics};
use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::{App, Error, web};
use std::sync::Arc;
use utoipa_actix_web::AppExt;
use utoipa_actix_web::service_config::ServiceConfig;
use utoipa_swagger_ui::SwaggerUi;

/// What handlers share: configuration, the database pool and the metrics registry.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    /// The job runner's pool in `shared.state`; each HTTP worker's own in the state its handlers get.
    pub pool: Pool,
    pub metrics: Arc<Metrics>,
    pub identity: Arc<identity::Identity>,
    pub rate_limits: Arc<dyn RateLimitStore>,
    pub catalog: crate::catalog::Catalog,
    pub moderation: crate::generation::moderation::Moderation,
    pub storage: crate::storage::Storage,
    pub providers: crate::providers::Providers,
    pub packages: crate::billing::packages::Packages,
    /// Stripe, when `EASEL_STRIPE_SECRET_KEY` is set.
    pub stripe: Option<Arc<crate::billing::stripe_api::StripeApi>>,
    /// Signalled when a job is queued in this process, so an idle worker starts at once.
    pub jobs_waiting: Arc<tokio::sync::Notify>,
    /// Wakes the requests waiting on a generation when it changes, in whichever process.
    pub changes: Arc<crate::generation::changes::Changes>,
    /// Signs the short-lived links providers fetch a job's input image from.
    pub signer: crate::inputs::Signer,
    /// Session lookups and submissions, gathered into batches on this state's pool (each HTTP
    /// worker has its own: see `with_pool`).
    pub sessions: Arc<identity::service::SessionLookups>,
    pub submissions: Arc<crate::generation::service::Submissions>,
    pub mailer: crate::mail::Mailer,
}

/// The serialised OpenAPI document served at `/openapi.json`.
pub struct SpecJson(pub String);

/// Every route of every feature. A feature adds one line here.
pub fn routes(cfg: &mut ServiceConfig) {
    ops::routes(cfg);
    identity::routes::routes(cfg);
    identity::admin::routes(cfg);
    crate::credits::routes::routes(cfg);
    crate::catalog::routes::routes(cfg);
    crate::generation::routes::routes(cfg);
    crate::generation::admin::routes(cfg);
    crate::providers::routes::routes(cfg);
    crate::gallery::routes::routes(cfg);
    crate::gallery::reports::routes(cfg);
    crate::billing::routes::routes(cfg);
    crate::inputs::routes::routes(cfg);
    crate::export::routes::routes(cfg);
}

/// Everything computed once per process and handed to each worker's `App`.
#[derive(Clone)]
pub struct Shared {
    pub state: web::Data<AppState>,
    spec: web::Data<SpecJson>,
    routes: web::Data<fallback::RouteTable>,
}

impl Shared {
    pub fn new(config: Config, pool: Pool) -> anyhow::Result<Self> {
        let spec = crate::openapi::document();
        let routes = fallback::RouteTable::from_openapi(&spec);
        let spec = crate::openapi::to_json(&spec)?;
        let metrics = Metrics::new().map_err(|e| anyhow::anyhow!("metrics: {e}"))?;
        let identity = identity::Identity::new(&config)?;
        let signer =
            crate::inputs::Signer::new(identity::tokens::load_or_create_secret(&config)?.expose());
        let catalog = crate::catalog::Catalog::load(
            &config.generation.models_path,
            config.generation.deadline,
        )?;
        let moderation =
            crate::generation::moderation::Moderation::load(&config.generation.moderation_path)?;
        let storage = crate::storage::Storage::from_config(&config.generation)?;
        let providers = crate::providers::Providers::new(&config, &storage);
        let packages = crate::billing::packages::Packages::load(&config.billing.packages_path)?;
        let stripe = crate::billing::stripe_api::StripeApi::new(&config.billing)?.map(Arc::new);
        let mailer = crate::mail::Mailer::new(&config.mail)?;
        metrics.watch_pool("jobs", &pool);
        let changes = Arc::new(crate::generation::changes::Changes::new(
            config.generation.change_poll,
        ));
        Ok(Self {
            state: web::Data::new(AppState {
                config: Arc::new(config),
                sessions: Arc::new(identity::service::session_lookups(pool.clone())),
                submissions: Arc::new(crate::generation::service::submissions(pool.clone())),
                pool,
                metrics: Arc::new(metrics),
                identity: Arc::new(identity),
                rate_limits: Arc::new(InMemoryStore::default()),
                catalog,
                moderation,
                storage,
                providers,
                packages,
                stripe,
                jobs_waiting: Arc::new(tokio::sync::Notify::new()),
                changes,
                signer,
                mailer,
            }),
            spec: web::Data::new(SpecJson(spec)),
            routes: web::Data::new(routes),
        })
    }

    /// The same, with `pool` in place of the process's pool (one HTTP worker's).
    pub fn with_pool(&self, pool: Pool) -> Self {
        self.state.metrics.watch_pool("http", &pool);
        Self {
            state: web::Data::new(AppState {
                sessions: Arc::new(identity::service::session_lookups(pool.clone())),
                submissions: Arc::new(crate::generation::service::submissions(pool.clone())),
                pool,
                ..AppState::clone(&self.state)
            }),
            ..self.clone()
        }
    }
}

pub fn build(
    shared: Shared,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = Error,
        InitError = (),
    >,
> {
    let max_body = shared.state.config.max_body_bytes;
    let (app, _spec) = App::new()
        .into_utoipa_app()
        .configure(routes)
        .split_for_parts();
    app.app_data(shared.state.clone())
        .app_data(shared.spec.clone())
        .app_data(shared.routes.clone())
        .app_data(extract::json_config(max_body))
        .app_data(web::PayloadConfig::new(max_body))
        .app_data(extract::query_config())
        .app_data(extract::path_config())
        .service(
            SwaggerUi::new("/docs/{_:.*}")
                .config(utoipa_swagger_ui::Config::new(["/openapi.json"])),
        )
        .default_service(web::to(fallback::no_route))
        .wrap(RateLimit::new(
            Arc::clone(&shared.state.rate_limits),
            shared.state.config.rate_limits,
        ))
        .wrap(Edge::new(
            Arc::clone(&shared.state.metrics),
            max_body,
            shared.state.config.providers.download_max_bytes,
        ))
}
