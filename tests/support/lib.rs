//! Test support: `TestApp` runs the real app on a free port against a database of its own, created
//! from a migrated template and dropped afterwards, so tests run in parallel without seeing each
//! other's rows.
#![expect(
    clippy::expect_used,
    reason = "test support: a failed setup should fail the test at once, loudly"
)]

use diesel::sql_query;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub mod cog;
pub mod idp;
pub mod receiver;
pub mod replicate;
pub mod s3;
pub mod smtp;
pub mod stripe;

pub use reqwest;
pub use serde_json::{Value, json};

/// The cluster tests create their databases in; `make test` starts it and sets this variable.
pub fn admin_url() -> String {
    std::env::var("EASEL_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:54330/postgres".to_owned())
}

const TEMPLATE: &str = "easel_test_template";
/// Serialises template migration and `CREATE DATABASE … TEMPLATE` across test processes.
const TEMPLATE_LOCK: i64 = 0x4561_7365_6c54_706c; // "EaselTpl"

/// Replaces the database name in a postgres URL.
pub fn url_for_database(admin_url: &str, name: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let base = base.rsplit_once('/').map_or(base, |(head, _)| head);
    format!("{base}/{name}{query}")
}

/// Creates an empty, fully migrated database and returns its name and URL.
pub async fn create_database() -> (String, String) {
    let admin = admin_url();
    let mut conn = AsyncPgConnection::establish(&admin).await.unwrap_or_else(|e| {
        panic!("cannot reach the test PostgreSQL at EASEL_TEST_DATABASE_URL ({e}); run `make test`, or `make test-db` before `cargo test`")
    });
    sql_query(format!("SELECT pg_advisory_lock({TEMPLATE_LOCK})"))
        .execute(&mut conn)
        .await
        .expect("advisory lock");
    let exists = sql_query(format!(
        "SELECT 1 FROM pg_database WHERE datname = '{TEMPLATE}'"
    ))
    .execute(&mut conn)
    .await
    .expect("query pg_database");
    if exists == 0 {
        sql_query(format!("CREATE DATABASE {TEMPLATE}"))
            .execute(&mut conn)
            .await
            .expect("create template database");
    }
    // Idempotent and quick when nothing is pending; picks up new migrations on a reused cluster.
    easel::db::migrate::run_pending(&url_for_database(&admin, TEMPLATE))
        .await
        .expect("migrate template database");
    let name = format!("easel_test_{}", uuid::Uuid::now_v7().simple());
    sql_query(format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}"))
        .execute(&mut conn)
        .await
        .expect("create test database");
    sql_query(format!("SELECT pg_advisory_unlock({TEMPLATE_LOCK})"))
        .execute(&mut conn)
        .await
        .expect("advisory unlock");
    let url = url_for_database(&admin, &name);
    (name, url)
}

/// Drops a test database, closing any connection still open to it. Usable from `Drop`.
pub fn drop_database_blocking(name: &str) {
    let name = name.to_owned();
    let result = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let mut conn = AsyncPgConnection::establish(&admin_url()).await?;
            sql_query(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut conn)
                .await?;
            Ok::<_, anyhow::Error>(())
        })
    })
    .join();
    if let Ok(Err(e)) = result {
        eprintln!("could not drop test database: {e}");
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub db_name: String,
    pub database_url: String,
    pub data_dir: PathBuf,
    /// The app's shared state, for starting job workers by hand in tests.
    pub shared: easel::app::Shared,
    handle: actix_web::dev::ServerHandle,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with::<&str>(&[]).await
    }

    /// Spawns with extra `EASEL_*` settings on top of the test defaults.
    pub async fn spawn_with<V: AsRef<str>>(overrides: &[(&str, V)]) -> Self {
        let (db_name, database_url) = create_database().await;
        let data_dir = std::env::temp_dir().join("easel-tests").join(&db_name);
        let mut vars: HashMap<String, String> = [
            ("EASEL_ENV", "test"),
            ("EASEL_BIND", "127.0.0.1:0"),
            ("EASEL_DB_POOL_SIZE", "4"),
            ("EASEL_WORKERS", "1"),
            ("EASEL_SHUTDOWN_TIMEOUT_SECS", "1"),
            (
                "EASEL_MODELS_PATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../config/models.toml"),
            ),
            (
                "EASEL_PACKAGES_PATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../config/packages.toml"),
            ),
            (
                "EASEL_MODERATION_PATH",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../config/moderation.toml"),
            ),
            ("EASEL_LOCAL_RENDER_MS", "50"),
            ("EASEL_WATCHDOG_INTERVAL_SECS", "1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        vars.insert("DATABASE_URL".to_owned(), database_url.clone());
        vars.insert("EASEL_DATA_DIR".to_owned(), data_dir.display().to_string());
        for (k, v) in overrides {
            vars.insert((*k).to_owned(), v.as_ref().to_owned());
        }
        let config = easel::Config::from_lookup(|k| vars.get(k).cloned()).expect("test config");
        let running = easel::server::start(config).await.expect("start server");
        let handle = running.handle.clone();
        let shared = running.shared.clone();
        tokio::spawn(running.server);
        Self {
            addr: running.addr,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            db_name,
            database_url,
            data_dir,
            shared,
            handle,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    /// Sends a request and returns status, headers and the body parsed as JSON (Null if not JSON).
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.expect("request");
        Reply::read(response).await
    }

    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// Sends a JSON body with an optional bearer token.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = self.request(method, path);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    /// Signs up `name` (email `name@example.com`, password `password-<name>`); returns the token response.
    pub async fn signup(&self, name: &str) -> Value {
        let reply = self
            .call(
                reqwest::Method::POST,
                "/v1/auth/signup",
                None,
                Some(json!({"email": format!("{name}@example.com"), "username": name, "password": format!("password-{name}")})),
            )
            .await;
        assert_eq!(reply.status, 201, "signup {name}: {}", reply.text);
        reply.json
    }

    /// Counts rows of a table (or any `FROM …` clause) in this test's database.
    pub async fn count(&self, from: &str) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db().await;
        sql_query(format!("SELECT count(*) AS n FROM {from}"))
            .get_result::<Count>(&mut conn)
            .await
            .expect("count")
            .n
    }

    /// The first column of the first row of a query, as text (None when there is no row or it is null).
    pub async fn text(&self, sql: &str) -> Option<String> {
        #[derive(diesel::QueryableByName)]
        struct Text {
            #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            v: Option<String>,
        }
        let mut conn = self.db().await;
        sql_query(format!("SELECT ({sql})::text AS v"))
            .get_result::<Text>(&mut conn)
            .await
            .ok()
            .and_then(|t| t.v)
    }

    /// Runs a statement in this test's database.
    pub async fn execute(&self, sql: &str) -> usize {
        let mut conn = self.db().await;
        sql_query(sql).execute(&mut conn).await.expect("execute")
    }

    /// A direct connection to this test's database, for setting up and checking rows.
    pub async fn db(&self) -> AsyncPgConnection {
        AsyncPgConnection::establish(&self.database_url)
            .await
            .expect("connect to test database")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // stop() sends the command at once; the returned future only waits for completion.
        drop(self.handle.stop(false));
        drop_database_blocking(&self.db_name);
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// A multipart/form-data body with these file fields (name, file name, content type, bytes), in order.
pub fn multipart_parts(parts: &[(&str, &str, &str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = format!("easel-test-{}", uuid::Uuid::now_v7().simple());
    let mut body = Vec::new();
    for (field, filename, content_type, bytes) in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

impl TestApp {
    /// Uploads `bytes` as an input image (`POST /v1/uploads`).
    pub async fn upload(&self, token: &str, filename: &str, bytes: &[u8]) -> Reply {
        self.upload_form(token, &[("file", filename, "image/png", bytes)])
            .await
    }

    /// Sends a form of these file fields to `POST /v1/uploads`.
    pub async fn upload_form(&self, token: &str, parts: &[(&str, &str, &str, &[u8])]) -> Reply {
        let (content_type, body) = multipart_parts(parts);
        self.send(
            self.request(reqwest::Method::POST, "/v1/uploads")
                .bearer_auth(token)
                .header("content-type", content_type)
                .body(body),
        )
        .await
    }
}

/// A response read in full.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub async fn read(response: reqwest::Response) -> Self {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            text,
            json,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts this is an RFC 9457 problem with the given status and code, carrying the request id.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "status; body: {}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "content type; body: {}",
            self.text
        );
        assert_eq!(self.json["code"], code, "code; body: {}", self.text);
        assert_eq!(
            self.json["status"], status,
            "status field; body: {}",
            self.text
        );
        let request_id = self.json["request_id"].as_str().unwrap_or_default();
        assert!(!request_id.is_empty(), "request_id in body: {}", self.text);
        assert_eq!(
            self.header("x-request-id"),
            Some(request_id),
            "request id header matches body"
        );
        assert!(
            self.json["title"].is_string()
                && self.json["detail"].is_string()
                && self.json["type"].is_string()
        );
    }
}
