//! Memory under bursts of connections: starts `authcap serve` (SQLite, a temporary database),
//! opens bursts of connections that each make a request and stay open, closes them, and prints
//! the server's resident memory (RSS) idle, at each peak, and after each burst has drained.
//!
//! `cargo bench --bench memory`; knobs: `AUTHCAP_BENCH_CONNECTIONS` (per burst, default 2000),
//! `AUTHCAP_BENCH_BURSTS` (default 3).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BINARY: &str = env!("CARGO_BIN_EXE_authcap");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .unwrap_or(0)
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raise_descriptor_limit() {
    #[cfg(unix)]
    // SAFETY: getrlimit/setrlimit read and write the one struct passed by pointer.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

async fn one_connection(address: String, request: String) -> Option<TcpStream> {
    let mut stream = TcpStream::connect(&address).await.ok()?;
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut buffer = vec![0u8; 16 * 1024];
    let n = stream.read(&mut buffer).await.ok()?;
    (n > 0).then_some(stream)
}

fn main() {
    raise_descriptor_limit();
    let connections = env_number("AUTHCAP_BENCH_CONNECTIONS", 2000);
    let bursts = env_number("AUTHCAP_BENCH_BURSTS", 3);
    let dir = std::env::temp_dir().join(format!("authcap-memory-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let database = format!("sqlite://{}", dir.join("authcap.db").display());
    let mut child = Command::new(BINARY)
        .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
        .env("AUTHCAP_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start authcap serve");
    let pid = child.id();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let server = Server(child);
    let mut secret = String::new();
    let base = loop {
        let line = lines.next().expect("the server exited").unwrap();
        if let Some(key) = line.strip_prefix("  secret_key: ") {
            secret = key.to_owned();
        }
        if let Some(base) = line.strip_prefix("listening on http://") {
            break base.to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let request = format!(
        "GET /v1/orders?limit=5 HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {secret}\r\n\r\n"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    println!("memory under bursts of {connections} kept-alive connections (RSS, MiB)");
    println!(
        "{:<10} {:>10} {:>10} {:>12}",
        "burst", "idle", "peak", "after 12 s"
    );
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut idle = rss_kib(pid);
    for burst in 1..=bursts {
        let opened = runtime.block_on(async {
            let tasks: Vec<_> = (0..connections)
                .map(|_| tokio::spawn(one_connection(base.clone(), request.clone())))
                .collect();
            let mut opened = Vec::new();
            for task in tasks {
                if let Ok(Some(stream)) = task.await {
                    opened.push(stream);
                }
            }
            opened
        });
        let served = opened.len();
        let peak = rss_kib(pid);
        drop(opened);
        std::thread::sleep(Duration::from_secs(12));
        let after = rss_kib(pid);
        println!(
            "{:<10} {:>10.1} {:>10.1} {:>12.1}   ({served} served)",
            burst,
            mib(idle),
            mib(peak),
            mib(after)
        );
        idle = after;
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
