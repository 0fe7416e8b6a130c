//! wif-serve under more new connections than it can answer: shed with 503 and Retry-After.
