//! The connection pool, embedded migrations and keyset cursors.

pub mod cursor;
pub mod ids;
pub mod migrate;
pub mod schema;

use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use std::time::Duration;

pub type Pool = diesel_async::pooled_connection::deadpool::Pool<AsyncPgConnection>;
pub type PoolError = diesel_async::pooled_connection::deadpool::PoolError;
pub type Conn = diesel_async::pooled_connection::deadpool::Object<AsyncPgConnection>;

/// A pool that waits at most a few seconds for a free connection, so an exhausted pool becomes a
/// 503 the client can retry rather than a request that hangs.
pub fn pool(database_url: &str, max_size: usize) -> anyhow::Result<Pool> {
    // Fast recycling: no test query on every checkout (a round trip per request). A connection that
    // broke is still detected and dropped, and the first query on a dead one fails over to a new one.
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager =
        AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(database_url, config);
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(deadpool::Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the database pool: {e}"))
}
