//! Issue 17: failover tests (filled in by its slice).
