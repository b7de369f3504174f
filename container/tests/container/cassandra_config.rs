//! `dsf-container` on Cassandra, configured by its file: a login with a password over TLS
//! serves; a wrong password, no login, a CA that did not sign the node's certificate, an
//! unreachable node, bad TLS files and a keyspace whose replication differs from the
//! configuration each end with a clear message and a non-zero exit; the password is never
//! logged. The login and TLS cases run on a node of their own (`scripts/cassandra start --auth
//! --tls` on free ports), so the suite's shared node stays open.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use dsf::Registry;
use dsf_container::grpc::GrpcClient;
use dsf_store_backends::cassandra::{CassandraConfig, CassandraStore};

use crate::common::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The test Cassandra's `host:port`.
fn test_node() -> String {
    CassandraConfig::local("x").contact_points[0].clone()
}

/// A keyspace name no other test uses.
fn keyspace(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("dsf_cfg_{prefix}_{}_{nanos}", std::process::id())
}

/// Writes a configuration serving gRPC on a free port with these `[store]` keys; returns its
/// path and the gRPC URL.
fn config(dir: &Path, store: &str) -> (PathBuf, String) {
    let port = free_port();
    let path = dir.join("dsf.toml");
    std::fs::write(&path, format!("grpc = \"127.0.0.1:{port}\"\n[store]\nkind = \"cassandra\"\n{store}")).unwrap();
    (path, format!("http://127.0.0.1:{port}"))
}

/// Runs `dsf-container` with this configuration until it exits (it must, within two
/// minutes); returns its output.
fn run_to_exit(config: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dsf-container"));
    command.arg("--config").arg(config).env("RUST_LOG", "info");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dsf-container starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("dsf-container did not exit: {:?}", child.wait_with_output().unwrap());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().unwrap()
}

/// The binary failed with an error that contains every one of `expected`.
fn fails_saying(out: &Output, expected: &[&str]) -> String {
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "dsf-container succeeded: {err}");
    for e in expected {
        assert!(err.contains(e), "expected {e:?} in: {err}");
    }
    err
}

const SIMPLE_1: &str = "replication = { class = \"SimpleStrategy\", replication_factor = 1 }\n";

#[test]
fn an_unreachable_node_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let node = format!("127.0.0.1:{}", free_port());
    let (path, _) = config(dir.path(), &format!("contact_points = [\"{node}\"]\nkeyspace = \"k\"\n{SIMPLE_1}"));
    let out = run_to_exit(&path, &[]);
    fails_saying(
        &out,
        &["connecting to Cassandra", &format!("cannot connect to Cassandra at {node}"), "contact_points"],
    );
}

#[test]
fn bad_tls_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("contact_points = [\"{}\"]\nkeyspace = \"k\"\n{SIMPLE_1}", test_node());
    let (path, _) = config(dir.path(), &format!("{store}tls_ca = \"missing-ca.pem\"\n"));
    let out = run_to_exit(&path, &[]);
    fails_saying(&out, &["cannot read the TLS CA file", "missing-ca.pem"]);

    std::fs::write(dir.path().join("ca.pem"), "this is not a certificate\n").unwrap();
    let (path, _) = config(dir.path(), &format!("{store}tls_ca = \"ca.pem\"\n"));
    let out = run_to_exit(&path, &[]);
    fails_saying(&out, &["the TLS CA file", "ca.pem", "is not PEM"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyspace_with_another_replication_is_reported_and_left_alone() {
    let ks = keyspace("repl");
    let store = CassandraStore::connect(CassandraConfig::local(&ks)).await.unwrap_or_else(|e| {
        panic!("cannot reach the test Cassandra ({e}): start it with `scripts/cassandra start --port 19142` and export DSF_CASSANDRA=127.0.0.1:19142 (scripts/test does)")
    });
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = config(
        dir.path(),
        &format!(
            "contact_points = [\"{}\"]\nkeyspace = \"{ks}\"\n\
             replication = {{ class = \"NetworkTopologyStrategy\", datacenter1 = 2 }}\n",
            test_node()
        ),
    );
    let out = tokio::task::spawn_blocking(move || run_to_exit(&path, &[])).await.unwrap();
    fails_saying(
        &out,
        &[
            &format!("keyspace {ks} exists with replication"),
            "{ class = \"SimpleStrategy\", replication_factor = 1 }",
            "{ class = \"NetworkTopologyStrategy\", datacenter1 = 2 }",
            "never altered",
        ],
    );
    // Untouched: the first configuration still connects.
    let again = CassandraStore::connect(CassandraConfig::local(&ks)).await.expect("the keyspace kept its replication");
    again.drop_keyspace().await.unwrap();
    drop(store);
}

/// A Cassandra node of its own with PasswordAuthenticator (superuser cassandra / cassandra)
/// and optional TLS (its CA in `<dir>/node/tls/ca.pem`), stopped on drop.
struct AuthNode {
    dir: tempfile::TempDir,
    addr: String,
}

fn cassandra_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cassandra")
}

impl AuthNode {
    fn start() -> AuthNode {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port().to_string();
        let storage = free_port().to_string();
        let out = Command::new(cassandra_script())
            .args(["start", "--auth", "--tls", "--heap", "512M", "--port", &port, "--storage-port", &storage, "--dir"])
            .arg(dir.path().join("node"))
            .output()
            .expect("scripts/cassandra runs");
        assert!(
            out.status.success(),
            "scripts/cassandra start --auth --tls failed (it needs Java 17 and the jars of `scripts/cassandra fetch`): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let addr = String::from_utf8_lossy(&out.stdout).trim().to_string();
        AuthNode { dir, addr }
    }

    /// A file of the node's TLS folder: `ca.pem` (the CA), `node.pem` (its certificate).
    fn tls(&self, file: &str) -> PathBuf {
        self.dir.path().join("node/tls").join(file)
    }
}

impl Drop for AuthNode {
    fn drop(&mut self) {
        let _ = Command::new(cassandra_script()).arg("stop").arg("--dir").arg(self.dir.path().join("node")).output();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_over_tls_serves_and_a_wrong_password_or_ca_is_a_clear_error() {
    let node = tokio::task::spawn_blocking(AuthNode::start).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = format!(
        "contact_points = [\"{}\"]\nkeyspace = \"{}\"\n{SIMPLE_1}username = \"cassandra\"\n",
        node.addr,
        keyspace("auth")
    );

    let (path, _) = config(dir.path(), &format!("{store}password_env = \"DSF_TEST_PASSWORD\"\n"));
    let out = tokio::task::spawn_blocking(move || run_to_exit(&path, &[("DSF_TEST_PASSWORD", "not-the-password")]))
        .await
        .unwrap();
    let err = fails_saying(&out, &["cannot connect to Cassandra", "username and password"]);
    assert!(!err.contains("not-the-password"), "the password was logged: {err}");

    // Without a login at all.
    let (path, _) = config(dir.path(), &store.replace("username = \"cassandra\"\n", ""));
    let out = tokio::task::spawn_blocking(move || run_to_exit(&path, &[])).await.unwrap();
    fails_saying(&out, &["cannot connect to Cassandra", "requires a login"]);

    // A CA that did not sign the node's certificate.
    std::fs::write(dir.path().join("password"), "cassandra\n").unwrap();
    let not_the_ca = node.tls("node.pem");
    let (path, _) =
        config(dir.path(), &format!("{store}password_file = \"password\"\ntls_ca = \"{}\"\n", not_the_ca.display()));
    let out = tokio::task::spawn_blocking(move || run_to_exit(&path, &[])).await.unwrap();
    fails_saying(&out, &["cannot connect to Cassandra", "certificate verify failed", "check TLS"]);

    // The right password, from a file, over TLS: the datastore serves, and never logs the
    // password.
    let ca = node.tls("ca.pem");
    let (path, url) =
        config(dir.path(), &format!("{store}password_file = \"password\"\ntls_ca = \"{}\"\n", ca.display()));
    let log = dir.path().join("log");
    let child = Command::new(env!("CARGO_BIN_EXE_dsf-container"))
        .arg("--config")
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("dsf-container starts");
    let mut child = Running(child);
    let deadline = Instant::now() + Duration::from_secs(120);
    let client = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            panic!("dsf-container exited ({status}): {}", std::fs::read_to_string(&log).unwrap());
        }
        match GrpcClient::connect(&url, Registry::builtin()).await {
            Ok(c) => break c,
            Err(e) if Instant::now() > deadline => panic!("dsf-container did not serve gRPC: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    };
    let (src, _) = address_book("behind a login");
    client.push(&src).await.unwrap();
    let back = client.clone_repository(src.key(), true, None).await.unwrap();
    assert_eq!(back.current_heads(), src.current_heads());
    drop(client);
    let _ = child.0.kill();
    let _ = child.0.wait();
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(log.contains("<redacted>"), "the configuration is logged with its password redacted: {log}");
    assert!(!log.contains("\"cassandra\" }") && !log.contains("password: \"cassandra\""), "{log}");
    drop(node);
}
