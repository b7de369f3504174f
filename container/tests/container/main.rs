//! The container's integration tests: a real RabbitMQ broker, a real Cassandra and RocksDB on
//! disk. Each test uses a system name (queues) and a keyspace of its own.

mod bad_input;
mod binary;
mod cassandra_config;
mod common;
mod crash;
mod datastore;
mod extract;
mod fuzz;
mod grpc;
mod history;
mod maint;
mod multi;
mod preload;
mod process;
mod reconnect;
mod transfer;
mod workbench;
