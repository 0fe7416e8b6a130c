//! Spreading refreshes: wif-get from cron (--min-ttl, --spread, --splay) and its metadata server.
