//! Time, injected: the real clock in production, a fake one in tests, so polling and expiry
//! are tested without sleeping.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A clock that can also wait.
pub trait Clock: Send + Sync + 'static {
    /// Now, as UTC wall time (persisted times are always wall time, never `Instant`).
    fn now(&self) -> DateTime<Utc>;
    /// Waits.
    fn sleep(&self, d: Duration);
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn sleep(&self, d: Duration) {
        std::thread::sleep(d)
    }
}

/// A shared clock.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
pub mod fake {
    use super::*;
    use std::sync::Mutex;

    /// A clock that moves only when slept on, and records every sleep.
    #[derive(Default)]
    pub struct FakeClock {
        pub now: Mutex<DateTime<Utc>>,
        pub sleeps: Mutex<Vec<Duration>>,
    }

    impl FakeClock {
        pub fn at(t: &str) -> Arc<FakeClock> {
            Arc::new(FakeClock {
                now: Mutex::new(t.parse().unwrap()),
                sleeps: Mutex::default(),
            })
        }
        pub fn advance(&self, d: Duration) {
            *self.now.lock().unwrap() += chrono::Duration::from_std(d).unwrap();
        }
        pub fn sleeps(&self) -> Vec<Duration> {
            self.sleeps.lock().unwrap().clone()
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> DateTime<Utc> {
            *self.now.lock().unwrap()
        }
        fn sleep(&self, d: Duration) {
            self.sleeps.lock().unwrap().push(d);
            self.advance(d);
        }
    }
}
