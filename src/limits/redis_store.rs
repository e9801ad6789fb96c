//! The cells of a fleet, in the Redis of the DPoP replay store (same URL, same key prefix):
//! one Lua script (`redis.lua`, the GCRA step of [`super::gcra`]) decides every policy of a
//! subject atomically, so concurrent requests on any nodes never pass the quota. Keys are
//! `{prefix}rl:{subject}:{policy}:{quota}` with the subject in braces (one Redis Cluster slot for a
//! subject's policies); each expires once its TAT has passed.

use std::time::Duration;

use super::{LimitStore, gcra};

const SCRIPT: &str = include_str!("redis.lua");

#[derive(Clone)]
pub struct RedisLimitStore {
    connection: ::redis::aio::ConnectionManager,
    prefix: String,
    script: ::redis::Script,
}

impl std::fmt::Debug for RedisLimitStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisLimitStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisLimitStore {
    /// Connects to `url`; keys start with `prefix` (`dpop.redis_prefix`).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, String> {
        let client = ::redis::Client::open(url).map_err(|e| e.to_string())?;
        // A limit check waits at most this long; past it the request is admitted.
        let timeout = Duration::from_secs(1);
        let config = ::redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(timeout)
            .set_response_timeout(timeout)
            .set_number_of_retries(1)
            .set_max_delay(200);
        let connection = ::redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .map_err(|e| e.to_string())?;
        Ok(Self {
            connection,
            prefix: prefix.to_owned(),
            script: ::redis::Script::new(SCRIPT),
        })
    }
}

#[async_trait::async_trait]
impl LimitStore for RedisLimitStore {
    async fn acquire(
        &self,
        subject: &str,
        cells: &[(&'static str, gcra::Cell)],
        now: i64,
    ) -> Result<(bool, Vec<i64>), String> {
        let mut invocation = self.script.prepare_invoke();
        for (name, cell) in cells {
            invocation.key(format!(
                "{}rl:{{{subject}}}:{name}:{}",
                self.prefix,
                cell.quota()
            ));
        }
        invocation.arg(now);
        for (_, cell) in cells {
            invocation.arg(cell.interval).arg(cell.capacity);
        }
        let out: Vec<i64> = invocation
            .invoke_async(&mut self.connection.clone())
            .await
            .map_err(|e| e.to_string())?;
        match out.split_first() {
            Some((admitted, tats)) if tats.len() == cells.len() => {
                Ok((*admitted == 1, tats.to_vec()))
            }
            _ => Err(format!("the limit script answered {out:?}")),
        }
    }
}
