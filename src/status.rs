//! The one place that decides what each error means to a caller.
//!
//! | error          | gRPC code           | what the caller should do        |
//! |----------------|---------------------|----------------------------------|
//! | InvalidInput   | INVALID_ARGUMENT    | fix the request                  |
//! | TooLarge       | RESOURCE_EXHAUSTED  | send smaller messages            |
//! | NotFound       | NOT_FOUND           | push first, or pull again        |
//! | DataLoss       | DATA_LOSS           | push the model again             |
//! | Unavailable    | UNAVAILABLE         | retry with backoff               |
//! | Tls            | UNAVAILABLE         | fix the daemon's TLS settings    |
//! | Timeout        | DEADLINE_EXCEEDED   | retry with backoff               |
//! | OutOfMemory    | RESOURCE_EXHAUSTED  | free Redis memory, then retry    |
//! | Unauthenticated| UNAVAILABLE         | fix the daemon's Redis password  |
//! | Conflict       | ABORTED             | pull, then push again            |
//! | Mismatch       | FAILED_PRECONDITION | align the namespace's settings   |
//! | Unsupported    | FAILED_PRECONDITION | use a namespace that can do it   |
//! | NoNewerVersion | DEADLINE_EXCEEDED   | wait again, or give up           |
//! | ShuttingDown   | UNAVAILABLE         | retry once the daemon is back    |
//! | Cancelled      | CANCELLED           | nothing: the client left         |
//! | Internal       | INTERNAL            | report it; details are logged    |

use tonic::{Code, Status};

use crate::error::Error;

/// The gRPC code of an error.
pub fn code(error: &Error) -> Code {
    match error {
        Error::InvalidInput(_) => Code::InvalidArgument,
        Error::TooLarge(_) => Code::ResourceExhausted,
        Error::NotFound(_) => Code::NotFound,
        Error::DataLoss(_) => Code::DataLoss,
        Error::Unavailable { .. } => Code::Unavailable,
        Error::Tls { .. } => Code::Unavailable,
        Error::Timeout { .. } => Code::DeadlineExceeded,
        Error::OutOfMemory { .. } => Code::ResourceExhausted,
        Error::Unauthenticated { .. } => Code::Unavailable,
        Error::Conflict { .. } => Code::Aborted,
        Error::Mismatch(_) => Code::FailedPrecondition,
        Error::Unsupported(_) => Code::FailedPrecondition,
        Error::NoNewerVersion(_) => Code::DeadlineExceeded,
        Error::ShuttingDown => Code::Unavailable,
        Error::Cancelled(_) => Code::Cancelled,
        Error::Internal(_) => Code::Internal,
    }
}

/// Whether the fault lies with the daemon or its Redis rather than with
/// the request: such errors are logged as warnings, the others at debug.
pub fn is_server_side(error: &Error) -> bool {
    matches!(
        code(error),
        Code::Unavailable | Code::DeadlineExceeded | Code::DataLoss | Code::Internal
    ) && !matches!(error, Error::NoNewerVersion(_) | Error::ShuttingDown)
        || matches!(error, Error::OutOfMemory { .. })
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        let message = match &error {
            // Internals stay in the log.
            Error::Internal(_) => {
                "internal error in the modelsync daemon; its log has the details".to_string()
            }
            other => other.to_string(),
        };
        Status::new(code(&error), message)
    }
}
