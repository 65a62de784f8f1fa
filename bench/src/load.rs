//! A closed-loop load generator: `conns` workers, each with its own
//! connection, issue requests back to back until the deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    /// A correct refusal (402: not enough credits).
    Refused,
    Error,
}

#[derive(Debug, Default, Clone)]
pub struct LoadResult {
    pub ok: u64,
    pub refused: u64,
    pub errors: u64,
    pub secs: f64,
    pub latencies_us: Vec<u32>,
}

impl LoadResult {
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.secs
    }

    pub fn percentile_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let mut sorted = self.latencies_us.clone();
        sorted.sort_unstable();
        let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
        sorted[index] as f64 / 1000.0
    }
}

pub async fn closed_loop<F, Fut>(conns: usize, duration: Duration, request: F) -> LoadResult
where
    F: Fn(usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Outcome> + Send + 'static,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for worker in 0..conns {
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut result = LoadResult::default();
            let mut iteration = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = request(worker, iteration).await;
                result.latencies_us.push(sent.elapsed().as_micros().min(u32::MAX as u128) as u32);
                match outcome {
                    Outcome::Ok => result.ok += 1,
                    Outcome::Refused => result.refused += 1,
                    Outcome::Error => result.errors += 1,
                }
                iteration += 1;
            }
            result
        }));
    }
    let mut total = LoadResult::default();
    for worker in workers {
        let result = worker.await.expect("load worker");
        total.ok += result.ok;
        total.refused += result.refused;
        total.errors += result.errors;
        total.latencies_us.extend(result.latencies_us);
    }
    total.secs = started.elapsed().as_secs_f64();
    total
}

/// One HTTP client with a connection per worker (HTTP/1.1 keep-alive).
pub fn client(conns: usize) -> reqwest::Client {
    reqwest::Client::builder().pool_max_idle_per_host(conns).timeout(Duration::from_secs(30)).build().unwrap()
}

/// Maps a status to an outcome; prints the first few unexpected answers.
pub fn outcome_of(status: reqwest::StatusCode, body: &str) -> Outcome {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SHOWN: AtomicU32 = AtomicU32::new(0);
    match status.as_u16() {
        200 => Outcome::Ok,
        402 => Outcome::Refused,
        _ => {
            if SHOWN.fetch_add(1, Ordering::Relaxed) < 5 {
                eprintln!("unexpected answer {status}: {}", &body[..body.len().min(300)]);
            }
            Outcome::Error
        }
    }
}
