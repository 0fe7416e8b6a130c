//! wif-serve as a credential broker (`--policy`): per-client credentials over real mutual
//! TLS, downscoped at the emulated STS and checked against the emulated Cloud Storage.
