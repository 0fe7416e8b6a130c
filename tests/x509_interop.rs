//! Issue 17: x509_interop tests (filled in by its slice).
