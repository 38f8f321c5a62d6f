//! The real Cog runtime (PyPI `cog`, from the project venv `target/venv` that `make test` fills)
//! serving the small Pillow predictor in `tests/cog/predict.py`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct CogServer {
    pub base: String,
    child: Child,
}

fn workspace() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A free port on loopback (bound and released: Cog binds it next).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl CogServer {
    /// Starts Cog on `port`, uploading output files to `upload_url` when given (else it answers
    /// with data URIs), and waits until its health check says READY.
    pub async fn start(port: u16, upload_url: Option<&str>) -> Self {
        let venv = workspace().join("target/venv/bin");
        let python = venv.join("python");
        assert!(
            python.exists(),
            "the project venv is missing: run `make test` (it installs cog into target/venv)"
        );
        let path = format!(
            "{}:{}",
            venv.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut command = Command::new(&python);
        command
            .args(["-m", "cog.server.http", "--host", "127.0.0.1"])
            .current_dir(workspace().join("tests/cog"))
            .env("PATH", path)
            .env("PORT", port.to_string())
            .env("COG_PREDICT_TYPE_STUB", "predict.py:Predictor")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(url) = upload_url {
            command.args(["--upload-url", url]);
        }
        // Its own process group, so dropping it also stops the worker subprocess Cog spawns.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("start cog");
        let base = format!("http://127.0.0.1:{port}");
        let mut server = Self { base, child };
        let client = reqwest::Client::new();
        // Cog imports its Python stack on start: seconds on an idle machine, many more on a busy CI
        // runner with every other test running beside it.
        let until = Instant::now() + Duration::from_secs(90);
        loop {
            let health = client
                .get(format!("{}/health-check", server.base))
                .send()
                .await;
            if let Ok(response) = health
                && let Ok(body) = response.json::<serde_json::Value>().await
                && body["status"] == "READY"
            {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("cog exited before it was ready: {status}");
            }
            assert!(Instant::now() < until, "cog did not become ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for CogServer {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}
