//! `dsf-cli`'s tests: every command called in-process (`commands.rs`), and the binary run end to
//! end (`e2e.rs`), against store folders and datastores served in this process over loopback
//! gRPC and the test RabbitMQ broker (real RocksDB stores on disk).

mod commands;
mod common;
mod e2e;
