//! Requests under way, so that readers missing the same bytes at once
//! wait for one request instead of each making it.

use crate::recent::Window;
use crate::Error;
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// How a request ended, as its waiters see it.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    /// The bytes received.
    Fetched(Arc<Window>),
    /// It failed; the failure, when the leader shares it (else each
    /// waiter asks on its own).
    Failed(Option<Arc<Error>>),
    /// The leader went away without an answer (it panicked).
    Abandoned,
}

/// One request under way for bytes `[start, end)`.
#[derive(Debug)]
pub(crate) struct Flight {
    pub(crate) start: u64,
    pub(crate) end: u64,
    outcome: Mutex<Option<Outcome>>,
    landed: Condvar,
}

impl Flight {
    pub(crate) fn new(start: u64, end: u64) -> Arc<Flight> {
        Arc::new(Flight {
            start,
            end,
            outcome: Mutex::new(None),
            landed: Condvar::new(),
        })
    }

    /// Whether its bytes hold all of `[start, end)`.
    pub(crate) fn covers(&self, start: u64, end: u64) -> bool {
        self.start <= start && end <= self.end
    }

    /// Waits for the outcome. The leader always lands its flight (a
    /// guard does it even when it panics), and its request has a
    /// deadline, so this ends.
    pub(crate) fn wait(&self) -> Outcome {
        let mut outcome = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if let Some(o) = &*outcome {
                return o.clone();
            }
            outcome = self
                .landed
                .wait(outcome)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Gives every waiter `outcome`; the first outcome given stays.
    pub(crate) fn land(&self, outcome: Outcome) {
        let mut slot = self.outcome.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(outcome);
        }
        drop(slot);
        self.landed.notify_all();
    }
}

/// The requests under way: at most one per thread reading, each dropped
/// from the list when it lands, so the list stays small.
#[derive(Debug, Default)]
pub(crate) struct Flights(Vec<Arc<Flight>>);

impl Flights {
    /// A request under way whose bytes hold `[start, end)`.
    pub(crate) fn covering(&self, start: u64, end: u64) -> Option<Arc<Flight>> {
        self.0.iter().find(|f| f.covers(start, end)).cloned()
    }

    /// Records a request for `[start, end)`.
    pub(crate) fn take_off(&mut self, start: u64, end: u64) -> Arc<Flight> {
        let flight = Flight::new(start, end);
        self.0.push(flight.clone());
        flight
    }

    /// Forgets `flight`: readers arriving from now on do not wait for it.
    pub(crate) fn remove(&mut self, flight: &Arc<Flight>) {
        self.0.retain(|f| !Arc::ptr_eq(f, flight));
    }

    /// Requests under way.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }
}

/// A failure shared with the readers that waited for the request, inside
/// the [`std::io::Error`] each of them gets; [`Error::of`] finds the
/// [`Error`] in it.
#[derive(Debug)]
pub(crate) struct Shared(pub(crate) Arc<Error>);

impl std::fmt::Display for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for Shared {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl Shared {
    /// The failure as a reader gets it: of its [`Error::io_kind`].
    pub(crate) fn io_error(error: Arc<Error>) -> std::io::Error {
        std::io::Error::new(error.io_kind(), Shared(error))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiters_get_the_outcome_and_the_first_one_stays() {
        let mut flights = Flights::default();
        let flight = flights.take_off(100, 200);
        assert!(flights.covering(150, 200).is_some());
        assert!(flights.covering(150, 201).is_none());
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let f = flights.covering(100, 101).unwrap();
                std::thread::spawn(move || f.wait())
            })
            .collect();
        flights.remove(&flight);
        assert_eq!(flights.len(), 0);
        let window = Arc::new(Window {
            start: 100,
            data: vec![1; 100],
        });
        flight.land(Outcome::Fetched(window));
        flight.land(Outcome::Abandoned);
        for w in waiters {
            assert!(matches!(w.join().unwrap(), Outcome::Fetched(w) if w.start == 100));
        }
    }
}
