//! A SIGTERM that arrives after `shutdown_signal()` is called but before its future
//! is first polled (a supervisor stopping a daemon right after its address file
//! appears) completes the future. Were the handler installed only at the first poll,
//! the signal's default action would kill this test process and the test would fail.
//! Its own test binary: the signal goes to the whole process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::time::Duration;

#[tokio::test]
async fn a_sigterm_before_the_first_poll_is_caught() {
    let shutdown = merklog_daemon::shutdown_signal();
    let sent = Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    // Give the signal time to be delivered before anything polls the future.
    std::thread::sleep(Duration::from_millis(200));
    tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("the SIGTERM was not seen");
}
