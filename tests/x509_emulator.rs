//! Issue 17: x509_emulator tests (filled in by its slice).
