//! Audit and error logs.

/// Rows per page of `GET audit_log` and `GET error_log`.
pub const LOG_PAGE_SIZE: u32 = 100;
