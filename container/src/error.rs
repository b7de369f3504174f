//! Errors of the container, and the one place where they map to ION response codes and gRPC
//! statuses.

use std::time::Duration;

use dsf_proto::net::ooici::core::message::ion_msg::ResponseCodes;

/// A request that a service refuses or fails: an ION response code and a text for the caller.
/// Codes 400–499 are application errors (the request is wrong), 500–599 container errors.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} {}: {message}", *code as i32, code.as_str_name())]
pub struct ServiceError {
    /// The ION response code.
    pub code: ResponseCodes,
    /// What went wrong, for the caller.
    pub message: String,
}

impl ServiceError {
    /// An error with any code.
    pub fn new(code: ResponseCodes, message: impl Into<String>) -> ServiceError {
        ServiceError { code, message: message.into() }
    }

    /// 400: the request is malformed or of the wrong type.
    pub fn bad_request(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ResponseCodes::BadRequest, message)
    }

    /// 404: the repository, commit or element does not exist.
    pub fn not_found(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ResponseCodes::NotFound, message)
    }

    /// 500: the service failed.
    pub fn internal(message: impl Into<String>) -> ServiceError {
        ServiceError::new(ResponseCodes::InternalServerError, message)
    }
}

impl From<dsf::Error> for ServiceError {
    fn from(e: dsf::Error) -> ServiceError {
        use dsf::Error as E;
        use dsf::store::StoreError as S;
        let code = match &e {
            E::Corrupt { .. } | E::Codec { .. } | E::UnknownType { .. } | E::DanglingLink(_) | E::Cycle { .. } => {
                ResponseCodes::BadRequest
            }
            E::MissingElement { .. } | E::UnknownBranch { .. } | E::UnknownCommit { .. } => ResponseCodes::NotFound,
            E::Store(S::Unavailable(_)) => ResponseCodes::ServiceUnavailable,
            E::Store(S::Invalid(_)) => ResponseCodes::BadRequest,
            _ => ResponseCodes::InternalServerError,
        };
        ServiceError::new(code, e.to_string())
    }
}

impl From<dsf::store::StoreError> for ServiceError {
    fn from(e: dsf::store::StoreError) -> ServiceError {
        ServiceError::from(dsf::Error::Store(e))
    }
}

impl From<ServiceError> for tonic::Status {
    fn from(e: ServiceError) -> tonic::Status {
        use tonic::Code;
        let code = match e.code {
            ResponseCodes::BadRequest => Code::InvalidArgument,
            ResponseCodes::NotFound => Code::NotFound,
            ResponseCodes::MethodNotAllowed | ResponseCodes::NotImplemented => Code::Unimplemented,
            ResponseCodes::ServiceUnavailable => Code::Unavailable,
            ResponseCodes::Unauthorized => Code::Unauthenticated,
            ResponseCodes::Forbidden | ResponseCodes::PermissionError => Code::PermissionDenied,
            ResponseCodes::Timeout => Code::DeadlineExceeded,
            _ => Code::Internal,
        };
        tonic::Status::new(code, e.message)
    }
}

/// What a caller of a remote service (over AMQP or gRPC) can get wrong or be told.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The service refused the request (ION codes 400–499: `ReceivedApplicationError`).
    #[error("{op} was refused by {target}: {error}")]
    Application {
        /// The operation.
        op: String,
        /// The service it was sent to.
        target: String,
        /// The code and text of the failure reply.
        error: ServiceError,
    },
    /// The service failed (ION codes 500–599: `ReceivedContainerError`).
    #[error("{op} failed in {target}: {error}")]
    Container {
        /// The operation.
        op: String,
        /// The service it was sent to.
        target: String,
        /// The code and text of the failure reply.
        error: ServiceError,
    },
    /// A failure reply with a code outside 400–599 (`ReceivedError`).
    #[error("{op} to {target} returned {error}")]
    Received {
        /// The operation.
        op: String,
        /// The service it was sent to.
        target: String,
        /// The code and text of the failure reply.
        error: ServiceError,
    },
    /// No reply within the timeout.
    #[error("{op} to {target} got no reply within {after:?}: is a {target} service running on this broker?")]
    Timeout {
        /// The operation.
        op: String,
        /// The service it was sent to.
        target: String,
        /// How long the caller waited.
        after: Duration,
    },
    /// A transfer in bounded parts stopped moving: the peer sent no part within the timeout
    /// after earlier parts had arrived.
    #[error(
        "the transfer from {target} stalled: {op} got no reply within {after:?} after {parts} parts ({bytes} bytes) had arrived"
    )]
    Stalled {
        /// The operation that got no reply.
        op: String,
        /// The peer.
        target: String,
        /// How long the caller waited for the part.
        after: Duration,
        /// Parts received before the stall.
        parts: u64,
        /// Bytes of elements received before the stall.
        bytes: u64,
    },
    /// The broker could not be reached or failed.
    #[error("message broker: {0}")]
    Broker(String),
    /// The container has lost its broker connection and is reconnecting: nothing was sent.
    /// Retrying later can succeed.
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    /// The broker connection dropped while the call waited for its reply: the request may or
    /// may not have been handled (a durable worker queue redelivers it). Retrying later can
    /// succeed; push and put_blobs are idempotent.
    #[error("{op} to {target}: the broker connection was lost before the reply came")]
    ConnectionLost {
        /// The operation.
        op: String,
        /// The service it was sent to.
        target: String,
    },
    /// The gRPC transport failed.
    #[error("gRPC transport: {0}")]
    Transport(String),
    /// A message or reply that breaks the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// An object-model error on this side.
    #[error(transparent)]
    Dsf(#[from] dsf::Error),
}

impl Error {
    /// The error a failure reply with this code maps to (spec §1.6).
    pub fn from_reply(op: &str, target: &str, error: ServiceError) -> Error {
        let (op, target) = (op.to_owned(), target.to_owned());
        match error.code as i32 {
            400..=499 => Error::Application { op, target, error },
            500..=599 => Error::Container { op, target, error },
            _ => Error::Received { op, target, error },
        }
    }

    /// The code of a failure reply, if this is one.
    pub fn code(&self) -> Option<ResponseCodes> {
        match self {
            Error::Application { error, .. } | Error::Container { error, .. } | Error::Received { error, .. } => {
                Some(error.code)
            }
            Error::Timeout { .. } | Error::Stalled { .. } => Some(ResponseCodes::Timeout),
            Error::Unavailable(_) | Error::ConnectionLost { .. } => Some(ResponseCodes::ServiceUnavailable),
            _ => None,
        }
    }

    /// The broker connection was down or dropped: the call can be retried once the container
    /// has reconnected.
    pub fn is_connection_loss(&self) -> bool {
        matches!(self, Error::Unavailable(_) | Error::ConnectionLost { .. })
    }
}

impl From<lapin::Error> for Error {
    fn from(e: lapin::Error) -> Error {
        Error::Broker(e.to_string())
    }
}

impl From<tonic::Status> for Error {
    fn from(s: tonic::Status) -> Error {
        use tonic::Code;
        let code = match s.code() {
            Code::InvalidArgument => ResponseCodes::BadRequest,
            Code::NotFound => ResponseCodes::NotFound,
            Code::Unimplemented => ResponseCodes::MethodNotAllowed,
            Code::Unavailable => ResponseCodes::ServiceUnavailable,
            Code::DeadlineExceeded => ResponseCodes::Timeout,
            _ => ResponseCodes::InternalServerError,
        };
        Error::from_reply("grpc", "datastore", ServiceError::new(code, s.message()))
    }
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
