//! [`Limits`]: how large a request may grow, on either engine, so that one request (or one
//! user's input) cannot amplify itself into memory or work that starves the others.

/// Bounds on what one request may make, checked where it happens, each with a clear failure
/// ([`Failure::Limit`](crate::request::Failure::Limit), which is not retried). Both engines
/// take them (`EmbeddedEngineBuilder::limits`, `RedisEngineBuilder::limits`, and
/// `FlowService`'s settings).
///
/// ```
/// # use goflow::request::Limits;
/// let limits = Limits::default()
///     .with_max_items(1_000)
///     .with_max_output_bytes(256 * 1024);
/// assert_eq!(limits.max_items, 1_000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// The most items a for-each may run its body over (default 10,000): a source vertex
    /// whose collection is larger fails, instead of starting that many instances at once.
    pub max_items: u32,
    /// The largest encoded output of one vertex, in bytes (default 1 MiB, the service's
    /// default body limit): a larger output fails its vertex instead of being stored (and, on
    /// Redis, kept in the request's hash for the retention).
    pub max_output_bytes: usize,
}

impl Limits {
    /// 10,000 items per for-each, 1 MiB per vertex output.
    pub const DEFAULT: Self = Self {
        max_items: 10_000,
        max_output_bytes: 1 << 20,
    };

    /// These limits with at most `items` items per for-each.
    #[must_use]
    pub const fn with_max_items(mut self, items: u32) -> Self {
        self.max_items = items;
        self
    }

    /// These limits with at most `bytes` bytes per encoded vertex output.
    #[must_use]
    pub const fn with_max_output_bytes(mut self, bytes: usize) -> Self {
        self.max_output_bytes = bytes;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}
