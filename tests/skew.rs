//! Issue 17: skew tests (filled in by its slice).
