//! Errors of the alert engine's commands.

/// Why an acknowledgement or a silence was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AlertError {
    /// No alert has this id (in this site, today).
    #[error("no alert {0:?}")]
    UnknownAlert(String),
    /// Only a firing alert can be acknowledged.
    #[error("the alert is not firing")]
    NotFiring,
    /// A silence must end in the future.
    #[error("a silence must end after now")]
    SilenceInPast,
}
