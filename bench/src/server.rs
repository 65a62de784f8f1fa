//! The release server as a child process: started on a free port against a
//! database, timed to healthy, measured (RSS, open files), killed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const ADMIN: &str = "bench_admin";

/// How to start servers for one run.
#[derive(Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub site_root: PathBuf,
    pub database_url: String,
    pub jwt_public_pem: String,
    pub config_file: PathBuf,
    pub log_dir: PathBuf,
    pub extra_env: Vec<(String, String)>,
}

pub struct Server {
    child: Child,
    pub base: String,
    pub port: u16,
    pub startup: Duration,
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Launch {
    pub fn command(&self, port: u16) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .env("DATABASE_URL", &self.database_url)
            .env("CREDITS_ADDR", format!("127.0.0.1:{port}"))
            .env("CLERK_JWT_KEY", &self.jwt_public_pem)
            .env("CREDITS_ADMIN_USER_IDS", ADMIN)
            .env("CREDITS_CONFIG", &self.config_file)
            .env("LEPTOS_SITE_ROOT", &self.site_root)
            .env("CREEM_WEBHOOK_SECRET", crate::CREEM_SECRET)
            .env("CLERK_WEBHOOK_SECRET", crate::CLERK_SECRET)
            .env("RUST_LOG", "warn");
        for (name, value) in &self.extra_env {
            command.env(name, value);
        }
        command
    }

    /// Runs `credits <args>` against this launch's database; returns stdout.
    pub fn cli(&self, args: &[&str]) -> (i32, String) {
        let output = self.command(0).args(args).output().expect("credits cli");
        (output.status.code().unwrap_or(-1), String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Starts a server and waits until `/healthz` answers 200.
    pub async fn start(&self, name: &str) -> Server {
        let port = free_port();
        let log = std::fs::File::create(self.log_dir.join(format!("{name}-{port}.log"))).unwrap();
        let started = Instant::now();
        let child = self
            .command(port)
            .arg("serve")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the server binary");
        let base = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        loop {
            if let Ok(response) = client.get(format!("{base}/healthz")).send().await {
                if response.status().is_success() {
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(30), "server {name} did not become healthy");
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Server { child, base, port, startup: started.elapsed() }
    }
}

impl Server {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A field of /proc/<pid>/status in kB (VmRSS, VmHWM).
    pub fn status_kb(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        text.lines()
            .find(|line| line.starts_with(field))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the server has used so far (user + system), in seconds.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(&self.pid().to_string())
    }

    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|dir| dir.count()).unwrap_or(0)
    }

    /// SIGKILL: no shutdown hook runs, as in a crash.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn stop(self) {
        self.kill9()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) a process (`"self"` or a pid) has used so far, in seconds.
pub fn cpu_secs(pid: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name (which ends at the last ')'), utime and stime are the 12th and 13th fields.
    let fields: Vec<&str> =
        text.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("").split_whitespace().collect();
    let ticks: u64 =
        fields.get(11..13).map(|t| t.iter().filter_map(|v| v.parse::<u64>().ok()).sum()).unwrap_or(0);
    ticks as f64 / 100.0
}
