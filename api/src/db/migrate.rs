//! Embedded migrations: `easel migrate`, `easel serve` at start-up, and the test harness all run these.

use diesel::migration::MigrationSource;
use diesel::pg::Pg;
use diesel::sql_types::{Bool, Text};
use diesel::{QueryableByName, sql_query};
use diesel_async::{AsyncConnection, AsyncMigrationHarness, AsyncPgConnection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations");

/// Advisory lock key that serialises migration runs across processes starting at once.
const MIGRATION_LOCK: i64 = 0x4561_7365_6c4d_6967; // "EaselMig"

/// The version of the newest embedded migration; readiness requires it to be applied.
pub fn latest_version() -> Option<String> {
    MigrationSource::<Pg>::migrations(&MIGRATIONS)
        .ok()?
        .iter()
        .map(|m| m.name().version().to_string())
        .max()
}

/// Applies every pending migration, holding an advisory lock so concurrent starts do not race.
/// Returns the versions applied.
pub async fn run_pending(database_url: &str) -> anyhow::Result<Vec<String>> {
    with_harness(database_url, |harness| {
        harness
            .run_pending_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect())
    })
    .await
}

/// Reverts every applied migration; used to prove each `down.sql` really undoes its `up.sql`.
pub async fn revert_all(database_url: &str) -> anyhow::Result<Vec<String>> {
    with_harness(database_url, |harness| {
        harness
            .revert_all_migrations(MIGRATIONS)
            .map(|versions| versions.iter().map(|v| v.to_string()).collect())
    })
    .await
}

type HarnessResult = diesel::migration::Result<Vec<String>>;

async fn with_harness(
    database_url: &str,
    work: impl FnOnce(&mut AsyncMigrationHarness<AsyncPgConnection>) -> HarnessResult + Send + 'static,
) -> anyhow::Result<Vec<String>> {
    let mut conn = AsyncPgConnection::establish(database_url).await?;
    sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .await?;
    // The harness drives the async connection with blocking calls; keep those off the async workers
    // (and make this usable from a current-thread runtime, as tests have).
    let (result, conn) = tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        let result = work(&mut harness).map_err(|e| anyhow::anyhow!("migration failed: {e}"));
        (result, harness.into_inner())
    })
    .await?;
    let mut conn = conn;
    sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))
        .execute(&mut conn)
        .await?;
    result
}

#[derive(QueryableByName)]
struct Flag {
    #[diesel(sql_type = Bool)]
    flag: bool,
}

/// True when the newest embedded migration is recorded as applied in this database.
pub async fn is_up_to_date(conn: &mut AsyncPgConnection) -> diesel::QueryResult<bool> {
    let Some(latest) = latest_version() else {
        return Ok(true);
    };
    // Two statements: the second names a table that does not exist before the first migration.
    let table: Flag =
        sql_query("SELECT to_regclass('__diesel_schema_migrations') IS NOT NULL AS flag")
            .get_result(conn)
            .await?;
    if !table.flag {
        return Ok(false);
    }
    let applied: Flag = sql_query(
        "SELECT EXISTS (SELECT 1 FROM __diesel_schema_migrations WHERE version = $1) AS flag",
    )
    .bind::<Text, _>(latest)
    .get_result(conn)
    .await?;
    Ok(applied.flag)
}
