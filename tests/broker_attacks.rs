//! An attacker's look at the credential broker and the emulated storage: ways to get a
//! broader credential than the policy grants, or to see a token where none should be.
