//! wif-emulate's STS downscoping and its enforcing Cloud Storage subset.
