//! The connection pool, embedded migrations and keyset cursors.

pub mod batch;
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

/// A statement kept prepared on its connection, keyed by its SQL text. Diesel never keeps raw SQL
/// (`sql_query`), `UPDATE`s or single-row inserts with optional values, so each run of one costs a
/// round trip to prepare it plus a parse and an analysis on the server; the hot paths (the gallery,
/// the job runner, submitting a generation) wrap theirs in this. Only for SQL built from a fixed set
/// of fragments with every value bound, never written in: each distinct text stays prepared for
/// the connection's life. Name the columns it returns: a prepared `RETURNING *` fails once a newer
/// migration adds a column ("cached plan must not change result type").
#[derive(Debug, Clone)]
pub struct Prepared<T>(pub T);

impl<T: diesel::query_builder::QueryFragment<diesel::pg::Pg>>
    diesel::query_builder::QueryFragment<diesel::pg::Pg> for Prepared<T>
{
    fn walk_ast<'b>(
        &'b self,
        pass: diesel::query_builder::AstPass<'_, 'b, diesel::pg::Pg>,
    ) -> diesel::QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _: &diesel::pg::Pg) -> diesel::QueryResult<bool> {
        Ok(true)
    }
}

impl<T> diesel::query_builder::QueryId for Prepared<T> {
    // Keyed by the SQL text, not the type: one type may build several texts.
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<T: diesel::query_builder::Query> diesel::query_builder::Query for Prepared<T> {
    type SqlType = T::SqlType;
}
