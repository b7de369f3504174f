//! The `dsf-container` binary: gRPC only on the embedded RocksDB, data kept across restarts,
//! a clean exit on SIGTERM, and clear errors for bad configuration.

use std::process::Command;
use std::time::{Duration, Instant};

use dsf::Registry;
use dsf_container::grpc::GrpcClient;

use crate::common::*;

async fn connect(url: &str) -> GrpcClient {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match GrpcClient::connect(url, Registry::builtin()).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("dsf-container did not serve gRPC: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn sigterm_and_wait(child: &mut Running) -> std::process::ExitStatus {
    let status = Command::new("kill").arg("-TERM").arg(child.0.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "dsf-container did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_only_on_rocksdb_survives_restart_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("dsf.toml");
    std::fs::write(
        &config,
        format!(
            "grpc = \"127.0.0.1:{port}\"\n[store]\nkind = \"rocksdb\"\npath = \"{}\"\n",
            dir.path().join("db").display()
        ),
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let (src, _) = address_book("kept");

    let mut child = start_binary(&config);
    let client = connect(&url).await;
    client.push(&src).await.unwrap();
    drop(client);
    let status = sigterm_and_wait(&mut child);
    assert!(status.success(), "a clean exit on SIGTERM: {status}");

    let mut child = start_binary(&config);
    let client = connect(&url).await;
    let back = client.clone_repository(src.key(), true, None).await.expect("the data survived the restart");
    assert_eq!(back.current_heads(), src.current_heads());
    drop(client);
    assert!(sigterm_and_wait(&mut child).success());
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("dsf.toml");
    std::fs::write(&config, "grpc = \"127.0.0.1:0\"\n[[apps]]\nname = \"mailer\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_dsf-container")).arg("--config").arg(&config).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown app") && err.contains("dsf.toml"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_dsf-container"))
        .arg("--config")
        .arg(dir.path().join("missing.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.toml"));
    let out = Command::new(env!("CARGO_BIN_EXE_dsf-container")).arg("--help").output().unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Usage: dsf-container --config FILE")
    );
}
