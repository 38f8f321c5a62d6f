//! Operations endpoints: liveness, readiness, Prometheus metrics and the OpenAPI document.

pub mod health;
pub mod metrics;

use utoipa_actix_web::service_config::ServiceConfig;

pub fn routes(cfg: &mut ServiceConfig) {
    cfg.service(health::get_health)
        .service(health::get_readiness)
        .service(metrics::get_metrics)
        .service(health::get_openapi);
}
