//! The capability container: process lifecycle, AMQP messaging, RPC conversations, the
//! datastore service, the client side of push, pull and clone, and the `dsf-cli` binary.
//!
//! It is the only crate that knows AMQP, gRPC and the command line. None of it is written
//! yet (see `ARCHITECTURE.md`).
