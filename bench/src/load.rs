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
    closed_loop_with(
        conns,
        duration,
        |_| (),
        move |(), worker, iteration| {
            let answer = request(worker, iteration);
            async move { ((), answer.await) }
        },
    )
    .await
}

/// The closed loop with a state per worker (its connection, say), which each
/// request future takes and hands back with its outcome.
pub async fn closed_loop_with<S, I, F, Fut>(
    conns: usize,
    duration: Duration,
    init: I,
    request: F,
) -> LoadResult
where
    S: Send + 'static,
    I: Fn(usize) -> S,
    F: Fn(S, usize, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = (S, Outcome)> + Send + 'static,
{
    let request = Arc::new(request);
    let started = Instant::now();
    let deadline = started + duration;
    let mut workers = Vec::new();
    for worker in 0..conns {
        let request = request.clone();
        let mut state = init(worker);
        workers.push(tokio::spawn(async move {
            let mut result = LoadResult::default();
            let mut iteration = 0u64;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let (back, outcome) = request(state, worker, iteration).await;
                state = back;
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

/// A lean HTTP/1.1 keep-alive connection for the spend loops: requests are
/// built once as bytes and written as they are, and an answer is read only as
/// far as its status and body. On a 2-core machine the load generator shares
/// the cores with the server; this one costs a fraction of what a general
/// client (URL parsing, header maps, connection pool) costs per request, so
/// more of the machine goes to the server being measured. The server does the
/// same work either way: full HTTP parsing, authentication, the spend.
pub struct Http1 {
    addr: std::net::SocketAddr,
    stream: Option<tokio::net::TcpStream>,
    buf: Vec<u8>,
}

impl Http1 {
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self { addr, stream: None, buf: Vec::with_capacity(8192) }
    }

    /// Sends one request and reads its answer: `(status, body)`.
    pub async fn send(&mut self, request: &[u8]) -> std::io::Result<(u16, Vec<u8>)> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        if self.stream.is_none() {
            let stream = tokio::net::TcpStream::connect(self.addr).await?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("connected");
        let answer = async {
            stream.write_all(request).await?;
            self.buf.clear();
            loop {
                if let Some(answer) = parse_response(&self.buf)? {
                    return Ok(answer);
                }
                if self.buf.capacity() - self.buf.len() < 4096 {
                    self.buf.reserve(8192);
                }
                if stream.read_buf(&mut self.buf).await? == 0 {
                    return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed"));
                }
            }
        }
        .await;
        if answer.is_err() {
            self.stream = None;
        }
        answer
    }
}

/// `Some((status, body))` once `buf` holds a whole answer (Content-Length or
/// chunked body); `None` while more bytes are needed.
fn parse_response(buf: &[u8]) -> std::io::Result<Option<(u16, Vec<u8>)>> {
    let invalid = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(buf).map_err(|error| invalid(&error.to_string()))? {
        httparse::Status::Complete(head) => head,
        httparse::Status::Partial => return Ok(None),
    };
    let status = response.code.ok_or_else(|| invalid("no status"))?;
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
            .map(|header| header.value)
    };
    let rest = &buf[head..];
    if let Some(length) = header("content-length") {
        let length: usize = std::str::from_utf8(length)
            .ok()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| invalid("length"))?;
        return Ok((rest.len() >= length).then(|| (status, rest[..length].to_vec())));
    }
    if header("transfer-encoding").is_some_and(|value| value.eq_ignore_ascii_case(b"chunked")) {
        let mut body = Vec::new();
        let mut at = 0;
        loop {
            let Some(line_end) = rest[at..].windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
            let size = std::str::from_utf8(&rest[at..at + line_end])
                .ok()
                .and_then(|line| usize::from_str_radix(line.split(';').next()?.trim(), 16).ok())
                .ok_or_else(|| invalid("chunk size"))?;
            let data = at + line_end + 2;
            if rest.len() < data + size + 2 {
                return Ok(None);
            }
            if size == 0 {
                return Ok(Some((status, body)));
            }
            body.extend_from_slice(&rest[data..data + size]);
            at = data + size + 2;
        }
    }
    Ok(Some((status, Vec::new())))
}

/// One POST with a bearer credential and a JSON body, as bytes on the wire.
pub fn post_bytes(host: &str, path: &str, bearer: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: {host}\r\nauthorization: Bearer {bearer}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The outcome of a raw answer (see `outcome_of`).
pub fn outcome_of_answer(answer: &std::io::Result<(u16, Vec<u8>)>) -> Outcome {
    match answer {
        Ok((status, body)) => outcome_of(
            reqwest::StatusCode::from_u16(*status).unwrap_or(reqwest::StatusCode::IM_A_TEAPOT),
            &String::from_utf8_lossy(body),
        ),
        Err(error) => outcome_of(reqwest::StatusCode::IM_A_TEAPOT, &error.to_string()),
    }
}
