//! Tracking for burr-core applications (arrives with its issue).
