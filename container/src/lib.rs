//! The DSF capability container: processes with a life cycle on RabbitMQ (ION's message
//! protocol), the datastore service on any store, the client side of push, pull and clone over
//! AMQP and gRPC, and the `dsf-container` binary.
//!
//! This is the only crate that knows AMQP, gRPC and the command line; objects, repositories and
//! storage come from `dsf` and `dsf-store-backends`.

pub mod amqp;
pub mod client;
pub mod config;
pub mod content;
pub mod datastore;
pub mod error;
pub mod grpc;
pub mod maint;
pub mod message;

pub use error::{Error, Result, ServiceError};
