//! The binary under hostile clients, over real TLS on loopback: memory stays within the stated bound under a
//! flood of near-limit bodies while ordinary reviews are answered, slow and stalled clients are dropped at
//! their timeouts, and SIGTERM is not held by them.

mod common;

use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tprotect_webhook::{
    Limits,
    admission::{MAX_BODY_BYTES, VALIDATE_PATH},
    limits::memory_bound,
};

const MIB: u64 = 1024 * 1024;

/// Flood connections. Each holds a body of 7 MiB less 1 KiB: 40 of them are 280 MiB, over twice the old
/// `limits.memory: 128Mi` (the issue's reproduction: RSS reached 201.6 MiB).
const FLOOD: usize = 40;

/// What a client saw: the status line the server answered with (if any) and when the connection ended.
#[derive(Debug)]
struct Ended {
    status: Option<String>,
    after: Duration,
}

/// Sends `head` and then `body` (as fast as the server takes it), then holds the connection; returns when the
/// server answers and closes it.
async fn send_and_hold(process: &WebhookProcess, head: String, body: Vec<u8>) -> Ended {
    let started = Instant::now();
    let stream = process.connect().await;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async move {
        if writer.write_all(head.as_bytes()).await.is_ok() && writer.write_all(&body).await.is_ok() {
            let _ = writer.flush().await;
        }
        // Holding: never send the rest.
        std::future::pending::<()>().await;
    };
    let read = async move {
        let mut answer = Vec::new();
        let _ = reader.read_to_end(&mut answer).await;
        answer
    };
    let answer = tokio::select! {
        answer = read => answer,
        () = write => unreachable!(),
    };
    let text = String::from_utf8_lossy(&answer);
    Ended {
        status: text.lines().next().filter(|l| !l.is_empty()).map(str::to_string),
        after: started.elapsed(),
    }
}

fn post_head(length: usize) -> String {
    format!(
        "POST {VALIDATE_PATH} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: \
         {length}\r\n\r\n"
    )
}

/// Reviews answered one after another on one keep-alive connection (as the API server's), each timed.
async fn timed_reviews(client: &reqwest::Client, process: &WebhookProcess, count: usize) -> Vec<Duration> {
    let url = format!("https://localhost:{}{VALIDATE_PATH}", process.https_addr.port());
    let mut times = Vec::new();
    for _ in 0..count {
        let review = amr_update_review();
        let started = Instant::now();
        let response = client.post(&url).body(review.body()).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let answer: serde_json::Value = response.json().await.unwrap();
        times.push(started.elapsed());
        assert_eq!(answer["response"]["uid"], review.uid.as_str());
        assert_eq!(answer["response"]["allowed"], true);
    }
    times
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_near_limit_bodies_stays_within_the_memory_bound_and_reviews_are_answered() {
    let process = WebhookProcess::start(&[]).await;
    let bound = memory_bound(&Limits::default()) as u64;
    let client = process.ca.https_client();
    // The unloaded baseline, on the connection the reviews during the flood use too.
    let before = timed_reviews(&client, &process, 9).await;
    let (idle_rss, _) = process.memory_kib();

    let flood: Vec<_> = (0..FLOOD)
        .map(|_| {
            let length = MAX_BODY_BYTES - 1024;
            let body = vec![b' '; length - 1];
            let process = &process;
            async move { send_and_hold(process, post_head(length), body).await }
        })
        .collect();
    let flood = futures::future::join_all(flood);
    let measured = async {
        // Once the server holds a flood body, review while the flood goes on.
        eventually("the server buffers a flood body", async || {
            (process.memory_kib().0 > idle_rss + 4 * 1024).then_some(())
        })
        .await
        .unwrap();
        let during = timed_reviews(&client, &process, 9).await;
        let (_, hwm_during) = process.memory_kib();
        (during, hwm_during)
    };
    let (ended, (during, _)) = tokio::join!(flood, measured);
    let (rss_after_flood, hwm) = process.memory_kib();

    let refused = ended
        .iter()
        .filter(|e| e.status.as_deref().is_some_and(|s| s.contains(" 503 ")))
        .count();
    let timed_out = ended
        .iter()
        .filter(|e| e.status.as_deref().is_some_and(|s| s.contains(" 408 ")))
        .count();
    eprintln!(
        "flood of {FLOOD} × {} MiB bodies: VmHWM {:.1} MiB (bound {:.1} MiB), idle RSS {:.1} MiB, RSS right \
         after {:.1} MiB; {refused} refused with 503, {timed_out} cut with 408 at their body timeout; reviews \
         unloaded {before:?}, during the flood {during:?}",
        MAX_BODY_BYTES as u64 / MIB,
        hwm as f64 / 1024.0,
        bound as f64 / MIB as f64,
        idle_rss as f64 / 1024.0,
        rss_after_flood as f64 / 1024.0
    );
    assert!(hwm * 1024 < bound, "VmHWM {hwm} KiB over the bound {bound}");
    assert_eq!(
        refused + timed_out,
        FLOOD,
        "every flood connection got an answer: {ended:?}"
    );
    assert!(timed_out >= 1 && refused >= 1, "{ended:?}");
    // The acceptance line is "answered within 100 ms". One review can be delayed by anything else on this
    // shared machine (other builds, this test's own 280 MiB of TLS), so the median of nine is held to it, and
    // the unloaded baseline beside it shows what the machine gave at that moment.
    let during_median = median(during);
    assert!(
        during_median < Duration::from_millis(100),
        "median review during the flood {during_median:?} (unloaded {:?})",
        median(before)
    );

    // The memory is given back: RSS returns under the bound, and close to where it was before.
    eventually("RSS back near idle after the flood", async || {
        let rss = process.memory_kib().0;
        (rss < idle_rss + 16 * 1024 && rss * 1024 < bound).then_some(())
    })
    .await
    .unwrap();
    eprintln!(
        "RSS after the flood settled: {:.1} MiB",
        process.memory_kib().0 as f64 / 1024.0
    );
}

#[tokio::test]
async fn idle_connections_cost_little_memory() {
    let process = WebhookProcess::start(&["--idle-timeout", "60s"]).await;
    let (rss_before, _) = process.memory_kib();
    let mut connections = Vec::new();
    for _ in 0..100 {
        connections.push(process.connect().await);
    }
    eventually("100 connections served", async || {
        (!process.metrics().await.is_empty()).then_some(())
    })
    .await
    .unwrap();
    let (rss, _) = process.memory_kib();
    let per_connection = (rss.saturating_sub(rss_before)) * 1024 / 100;
    eprintln!("100 idle TLS connections: {per_connection} bytes each");
    assert!(
        per_connection < tprotect_webhook::limits::MEMORY_PER_CONNECTION as u64,
        "{per_connection} bytes per idle connection"
    );
    drop(connections);
}

/// The three kinds of slow client, each against its own timeout (distinct values, so that each close is
/// seen to be its own timeout's doing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_stalled_clients_are_disconnected_at_their_timeouts() {
    let header = Duration::from_secs(1);
    let body = Duration::from_secs(2);
    let idle = Duration::from_secs(3);
    let process = WebhookProcess::start(&[
        "--header-read-timeout",
        "1s",
        "--body-read-timeout",
        "2s",
        "--idle-timeout",
        "3s",
    ])
    .await;
    // Generous: a close must come within its timeout plus this (a loaded machine), and not before it.
    let slack = Duration::from_secs(4);

    let slow_header = async {
        let started = Instant::now();
        let mut stream = process.connect().await;
        let head = post_head(10);
        for byte in head.as_bytes() {
            if stream.write_all(&[*byte]).await.is_err() {
                break;
            }
            let mut probe = [0u8; 1];
            // One byte every 200 ms; the head would take seconds.
            if let Ok(Ok(0) | Err(_)) =
                tokio::time::timeout(Duration::from_millis(200), stream.read(&mut probe)).await
            {
                break;
            }
        }
        started.elapsed()
    };
    let truncated = send_and_hold(&process, post_head(1000), br#"{"apiVersion":"#.to_vec());
    let endless_chunked = async {
        let started = Instant::now();
        let mut stream = process.connect().await;
        stream
            .write_all(
                format!(
                    "POST {VALIDATE_PATH} HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .unwrap();
        let mut answer = Vec::new();
        loop {
            if stream.write_all(b"1\r\n \r\n").await.is_err() {
                break;
            }
            let mut buffer = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => break,
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
                Err(_) => {}
            }
            assert!(started.elapsed() < Duration::from_secs(60), "never disconnected");
        }
        (started.elapsed(), String::from_utf8_lossy(&answer).to_string())
    };
    let idle_client = async {
        let started = Instant::now();
        let mut stream = process.connect().await;
        let mut buffer = [0u8; 64];
        let _ = stream.read(&mut buffer).await;
        started.elapsed()
    };
    let (slow_header, truncated, (chunked, chunked_answer), idle_closed) =
        tokio::join!(slow_header, truncated, endless_chunked, idle_client);
    eprintln!(
        "slow header closed after {slow_header:?} (timeout {header:?}), truncated body after {:?} ({body:?}, \
         answered {:?}), endless chunked body after {chunked:?} ({body:?}), idle connection after \
         {idle_closed:?} ({idle:?})",
        truncated.after, truncated.status
    );
    for (what, elapsed, timeout) in [
        ("slow header", slow_header, header),
        ("truncated body", truncated.after, body),
        ("endless chunked body", chunked, body),
        ("idle connection", idle_closed, idle),
    ] {
        assert!(
            elapsed >= timeout && elapsed < timeout + slack,
            "{what}: closed after {elapsed:?}, timeout {timeout:?}"
        );
    }
    assert!(
        truncated.status.as_deref().is_some_and(|s| s.contains(" 408 ")),
        "{truncated:?}"
    );
    assert!(chunked_answer.starts_with("HTTP/1.1 408 "), "{chunked_answer}");
    let metrics = process.metrics().await;
    for line in [
        r#"tprotect_webhook_connections_closed_total{reason="header_timeout"} 1"#,
        r#"tprotect_webhook_connections_closed_total{reason="idle_timeout"} 1"#,
        r#"tprotect_webhook_rejected_requests_total{reason="body_timeout"} 2"#,
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_is_not_held_by_slow_clients() {
    // Timeouts far longer than the drain: exiting before them shows they did not hold the shutdown.
    let process = WebhookProcess::start(&[
        "--header-read-timeout",
        "60s",
        "--body-read-timeout",
        "60s",
        "--idle-timeout",
        "60s",
        "--shutdown-delay",
        "0s",
        "--shutdown-timeout",
        "60s",
    ])
    .await;
    let client = process.ca.https_client();
    timed_reviews(&client, &process, 1).await;
    let mut slow_header = process.connect().await;
    slow_header
        .write_all(b"POST /validate HTTP/1.1\r\nhos")
        .await
        .unwrap();
    let mut truncated = process.connect().await;
    truncated.write_all(post_head(1000).as_bytes()).await.unwrap();
    truncated.write_all(b"{\"apiVersion\":").await.unwrap();
    let mut chunked = process.connect().await;
    chunked
        .write_all(
            b"POST /validate HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n1\r\n \r\n",
        )
        .await
        .unwrap();
    let _idle = process.connect().await;
    for stream in [&mut slow_header, &mut truncated, &mut chunked] {
        stream.flush().await.unwrap();
    }
    eventually("five connections open", async || {
        // The slow clients are in place once the server has read their bytes; give it a moment.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ready = reqwest::get(format!("http://{}/readyz", process.health_addr)).await;
        ready.is_ok().then_some(())
    })
    .await
    .unwrap();

    let started = Instant::now();
    let mut process = process;
    let status = process.sigterm_and_wait();
    let took = started.elapsed();
    eprintln!("exited {status} {took:?} after SIGTERM with four slow clients connected");
    assert!(status.success());
    assert!(
        took < Duration::from_secs(15),
        "SIGTERM took {took:?}: the slow clients' 60 s timeouts held it"
    );
    assert!(
        find_log(&process.lines, "shutdown complete").is_some() || {
            // The log reader thread may lag the exit by a moment.
            std::thread::sleep(Duration::from_millis(500));
            find_log(&process.lines, "shutdown complete").is_some()
        }
    );
}
