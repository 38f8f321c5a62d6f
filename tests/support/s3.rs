//! An S3-compatible endpoint for the storage tests: moto's server (PyPI `moto[server]`, from the
//! project venv), which speaks S3's REST wire format.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct S3Server {
    pub endpoint: String,
    child: Child,
}

impl S3Server {
    /// Starts moto on a free port and creates `bucket` in it.
    pub async fn start(bucket: &str) -> Self {
        let bin = std::path::PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../target/venv/bin/moto_server"
        ));
        assert!(
            bin.exists(),
            "moto_server is missing: run `make test` (it installs the venv's test tools)"
        );
        let port = crate::cog::free_port();
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto");
        let server = Self {
            endpoint: format!("http://127.0.0.1:{port}"),
            child,
        };
        let client = reqwest::Client::new();
        // Python starting beside every other test on a busy CI runner can take a while.
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            let created = client
                .put(format!("{}/{bucket}", server.endpoint))
                .send()
                .await;
            if created.is_ok_and(|r| r.status().is_success()) {
                return server;
            }
            assert!(Instant::now() < until, "moto did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The keys in `bucket` (one ListObjectsV2 page).
    pub async fn keys(&self, bucket: &str) -> Vec<String> {
        let body = reqwest::get(format!("{}/{bucket}?list-type=2", self.endpoint))
            .await
            .expect("list")
            .text()
            .await
            .expect("list body");
        body.split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key.to_owned()))
            .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
