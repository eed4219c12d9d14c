//! The server clock. Audit times come from here (UTC, the server's own clock); tests can move it.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset: Arc<Mutex<Duration>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// Now, in UTC, truncated to microseconds (what both databases store).
    pub fn now(&self) -> DateTime<Utc> {
        let offset = self.offset.lock().map(|o| *o).unwrap_or_else(|p| *p.into_inner());
        corelab_store::audit::truncate_micros(Utc::now() + offset)
    }

    /// Moves this clock forward (tests of timeouts and windows).
    pub fn advance(&self, by: Duration) {
        if let Ok(mut o) = self.offset.lock() {
            *o += by;
        }
    }
}
