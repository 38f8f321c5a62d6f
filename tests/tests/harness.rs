//! The harness itself: isolation between parallel tests, migrations that undo cleanly.

use diesel::sql_query;
use diesel::sql_types::{BigInt, Text};
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use easel_tests::{TestApp, admin_url, create_database, url_for_database};

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

#[derive(diesel::QueryableByName)]
struct Name {
    #[diesel(sql_type = Text)]
    name: String,
}

async fn count_probe_rows(conn: &mut AsyncPgConnection) -> i64 {
    sql_query("SELECT count(*) AS n FROM isolation_probe")
        .get_result::<Count>(conn)
        .await
        .map(|c| c.n)
        .unwrap_or(-1)
}

#[tokio::test]
async fn two_apps_running_at_once_do_not_share_data() {
    let (a, b) = tokio::join!(TestApp::spawn(), TestApp::spawn());
    assert_ne!(a.db_name, b.db_name);

    let (mut conn_a, mut conn_b) = (a.db().await, b.db().await);
    for conn in [&mut conn_a, &mut conn_b] {
        sql_query("CREATE TABLE isolation_probe (who text NOT NULL)")
            .execute(conn)
            .await
            .expect("create probe table in each database");
    }
    sql_query("INSERT INTO isolation_probe VALUES ('a'), ('a')")
        .execute(&mut conn_a)
        .await
        .expect("insert into a");
    sql_query("INSERT INTO isolation_probe VALUES ('b')")
        .execute(&mut conn_b)
        .await
        .expect("insert into b");
    assert_eq!(count_probe_rows(&mut conn_a).await, 2);
    assert_eq!(count_probe_rows(&mut conn_b).await, 1);

    // each app's own pool is connected to its own database
    for app in [&a, &b] {
        let reply = app.send(app.request(reqwest::Method::GET, "/readyz")).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        let current: Name = sql_query("SELECT current_database()::text AS name")
            .get_result(&mut app.db().await)
            .await
            .expect("current_database");
        assert_eq!(current.name, app.db_name);
    }
}

#[tokio::test]
async fn a_dropped_app_drops_its_database() {
    let app = TestApp::spawn().await;
    let name = app.db_name.clone();
    drop(app);
    let mut admin = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("admin connection");
    let left: Count = sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(&name)
        .get_result(&mut admin)
        .await
        .expect("query pg_database");
    assert_eq!(left.n, 0, "database {name} should be gone");
}

#[tokio::test]
async fn every_migration_reverts_and_reapplies() {
    let (name, url) = create_database().await;
    let expected = easel::db::migrate::latest_version().expect("at least one migration");
    let reverted = easel::db::migrate::revert_all(&url)
        .await
        .expect("revert all");
    assert!(reverted.contains(&expected), "reverted {reverted:?}");
    let mut conn = AsyncPgConnection::establish(&url).await.expect("connect");
    assert!(
        !easel::db::migrate::is_up_to_date(&mut conn)
            .await
            .expect("check")
    );
    let applied = easel::db::migrate::run_pending(&url)
        .await
        .expect("reapply");
    assert_eq!(applied.len(), reverted.len());
    assert!(
        easel::db::migrate::is_up_to_date(&mut conn)
            .await
            .expect("check")
    );
    drop(conn);
    easel_tests::drop_database_blocking(&name);
    assert_eq!(
        url_for_database("postgres://u@h:1/a?x=1", "b"),
        "postgres://u@h:1/b?x=1"
    );
}
