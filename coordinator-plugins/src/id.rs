//! Sortable unique ids for keys that are never reused.
//!
//! An id is 30 lower-case hex digits: 12 of wall-clock milliseconds, 6 of a
//! counter within that millisecond, and 12 of a random value drawn once per
//! generator:
//!
//! ```text
//! 018f3a2b4c5d 000003 9f1e2d3c4b5a
//! ^ unix ms    ^ seq  ^ generator
//! ```
//!
//! Why our own and not `ulid`: ULID's monotonic mode keeps order within one
//! generator by incrementing its *random* part, so two producers in one
//! millisecond interleave by chance; here order within a generator is the
//! counter, which also makes a batch keep its order. The format is fixed
//! width hex, so string order is numeric order on every backend's listing;
//! there is no dependency; and the random part comes from our own seeded
//! stream, so simulations reproduce. The wall clock is used for *order
//! only*, never to decide anything: a clock stepped back keeps ids of one
//! generator increasing (the generator never goes below its last
//! millisecond), and uniqueness rests on the counter and the random part. A
//! collision of two generators' random parts in the same millisecond and
//! counter is still caught, because every id-keyed object is created with
//! create-if-absent: the caller sees `AlreadyExists` and draws a new id.

use std::fmt;
use std::sync::Mutex;

use crate::rng::Rng;

/// A sortable unique id: 30 lower-case hex digits, 12 of wall-clock
/// milliseconds, 6 of a counter within that millisecond, 12 of a random
/// value drawn once per generator. Later ids of one generator sort after
/// earlier ones (the counter keeps a batch in order); ids of different
/// generators sort by millisecond first. The wall clock only orders ids,
/// it decides nothing; uniqueness rests on the counter and the random
/// part, and every id-keyed object is created with create-if-absent, so a
/// collision is caught and a new id drawn. (Our own format rather than
/// ULID: ULID's monotonic mode orders within a millisecond by incrementing
/// its random part, which a batch cannot rely on across generators; this
/// format needs no dependency and is reproducible from a seed.)
///
/// ```
/// use coordinator_plugins::SortableId;
/// let id = SortableId::parse("018f3a2b4c5d0000039f1e2d3c4b5a").unwrap();
/// assert_eq!(id.unix_ms(), 0x018f3a2b4c5d);
/// assert!(SortableId::parse("not-an-id").is_none());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortableId(String);

/// The length of a [`SortableId`] in characters.
pub const ID_LEN: usize = 30;

impl SortableId {
    /// Parses an id written by [`as_str`](Self::as_str); `None` if `text` is
    /// not 30 lower-case hex digits.
    pub fn parse(text: &str) -> Option<Self> {
        let ok = text.len() == ID_LEN
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        ok.then(|| Self(text.to_owned()))
    }

    /// The id as written in keys.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The wall-clock millisecond the id was made in (informational).
    pub fn unix_ms(&self) -> u64 {
        u64::from_str_radix(&self.0[..12], 16).unwrap_or(0)
    }
}

impl fmt::Display for SortableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for SortableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SortableId({})", self.0)
    }
}

/// Makes [`SortableId`]s: strictly increasing per generator.
#[derive(Debug)]
pub(crate) struct IdGenerator {
    suffix: u64,
    last: Mutex<(u64, u64)>,
}

const SEQ_MAX: u64 = 0xFF_FFFF;

impl IdGenerator {
    /// A generator whose random part comes from `rng`.
    pub(crate) fn new(rng: &Rng) -> Self {
        Self {
            suffix: rng.next_u64() & 0xFFFF_FFFF_FFFF,
            last: Mutex::new((0, 0)),
        }
    }

    /// The next id, made at wall-clock `unix_ms`.
    pub(crate) fn next(&self, unix_ms: u64) -> SortableId {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (ms, seq) = if unix_ms > last.0 {
            (unix_ms, 0)
        } else if last.1 < SEQ_MAX {
            (last.0, last.1 + 1)
        } else {
            (last.0 + 1, 0)
        };
        *last = (ms, seq);
        SortableId(format!(
            "{:012x}{:06x}{:012x}",
            ms & 0xFFFF_FFFF_FFFF,
            seq,
            self.suffix
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_increase_even_when_the_clock_goes_back() {
        let ids = IdGenerator::new(&Rng::new(1));
        let a = ids.next(1_000);
        let b = ids.next(1_000);
        let c = ids.next(900);
        let d = ids.next(2_000);
        assert!(a < b && b < c && c < d, "{a} {b} {c} {d}");
        assert_eq!(a.as_str().len(), ID_LEN);
        assert_eq!(SortableId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(d.unix_ms(), 2_000);
    }

    #[test]
    fn counter_overflow_moves_to_the_next_millisecond() {
        let ids = IdGenerator::new(&Rng::new(1));
        *ids.last.lock().unwrap() = (5, SEQ_MAX);
        assert_eq!(ids.next(5).unix_ms(), 6);
    }
}
