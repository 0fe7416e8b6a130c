//! Issue 17: x509 tests (filled in by its slice).
