//! Routes of simple-protocol query texts, remembered per text.
//!
//! Applications send the same few query texts again and again, and routing
//! a lone `Q` runs the lexer over the whole text each time (a prepared
//! statement is classified once, when interned; this does the same for
//! simple queries). The route of a text depends only on the text and the
//! [`ClassifyConfig`], which the cache owns, so a cached route is exactly
//! what classifying again would give.
//!
//! Bounded: only texts up to a length are kept ([`RouteCache::MAX_TEXT`]
//! by default), and at most a number of them ([`RouteCache::CAPACITY`]);
//! when it is full it is emptied and refills with the texts sent next.
//! Clearing costs nothing per lookup, unlike tracking recency, and a
//! workload with more distinct texts than the cap pays what it would pay
//! without a cache plus one insert per text. Worst case memory:
//! capacity × maximum text length (16 MiB with the defaults).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::classify::{ClassifyConfig, Route};

/// Routes by query text; one per proxy.
#[derive(Debug)]
pub struct RouteCache {
    config: ClassifyConfig,
    routes: Mutex<HashMap<Box<[u8]>, Route>>,
    capacity: usize,
    max_text: usize,
}

impl RouteCache {
    /// Texts kept at most, by default.
    pub const CAPACITY: usize = 4096;
    /// Longest text kept, in bytes, by default: longer ones are classified
    /// every time (rare, and they would take the most memory).
    pub const MAX_TEXT: usize = 4096;

    /// A cache of texts classified with `config`, with the default limits.
    pub fn new(config: ClassifyConfig) -> Self {
        Self::with_limits(config, Self::CAPACITY, Self::MAX_TEXT)
    }

    /// A cache of at most `capacity` texts of at most `max_text` bytes
    /// (`capacity` 0: nothing is kept).
    pub fn with_limits(config: ClassifyConfig, capacity: usize, max_text: usize) -> Self {
        Self {
            config,
            routes: Mutex::new(HashMap::new()),
            capacity,
            max_text,
        }
    }

    /// The classification settings routes are computed with.
    pub fn config(&self) -> &ClassifyConfig {
        &self.config
    }

    /// Where the simple-query text `sql` (without its NUL) may run: what
    /// [`statement_route`](crate::prepared::statement_route) gives, from the
    /// cache when the text was seen.
    pub fn route(&self, sql: &[u8]) -> Route {
        if self.capacity == 0 || sql.len() > self.max_text {
            return crate::prepared::text_route(sql, &self.config);
        }
        if let Some(route) = self.lock().get(sql) {
            return *route;
        }
        // Classified without the lock: the lexer is the slow part, and
        // other sessions' lookups must not wait behind it.
        let route = crate::prepared::text_route(sql, &self.config);
        let mut routes = self.lock();
        if routes.len() >= self.capacity {
            routes.clear();
        }
        routes.insert(sql.into(), route);
        route
    }

    /// How many texts are kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no text is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, Route>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prepared::text_route;

    #[test]
    fn the_cap_holds_and_routes_stay_those_of_the_texts() {
        let config = ClassifyConfig::default();
        let cache = RouteCache::with_limits(config.clone(), 8, 64);
        for i in 0..50 {
            // Reads and writes interleaved, so a stale entry would show.
            let sql = if i % 3 == 0 {
                format!("DELETE FROM t WHERE id = {i}")
            } else {
                format!("SELECT * FROM t WHERE id = {i}")
            };
            for _ in 0..2 {
                assert_eq!(
                    cache.route(sql.as_bytes()),
                    text_route(sql.as_bytes(), &config),
                    "{sql}"
                );
                assert!(cache.len() <= 8, "{} texts kept", cache.len());
            }
        }
        assert!(!cache.is_empty());
    }

    #[test]
    fn long_texts_and_a_zero_capacity_keep_nothing() {
        let config = ClassifyConfig::default();
        let cache = RouteCache::with_limits(config.clone(), 8, 16);
        let long = b"SELECT 1 FROM a_rather_long_table_name";
        assert_eq!(cache.route(long), Route::Any);
        assert!(cache.is_empty());
        assert_eq!(cache.route(b"SELECT 1"), Route::Any);
        assert_eq!(cache.len(), 1);

        let none = RouteCache::with_limits(config, 0, 16);
        assert!(none.route(b"SELECT nextval('s')").is_primary());
        assert!(none.is_empty());
    }
}
