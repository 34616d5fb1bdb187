//! Many recordings as one stream in time order: each source put back in order within a bounded
//! window, then a k-way merge on the sources' heads.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use super::{Input, ReplayError, Source, REORDER_MAX, REORDER_NS};
use crate::event::record::{Record, Time};

/// Which records a replay keeps: `--host`, `--since`, `--until` (resolved to times).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Empty: every host.
    pub hosts: Vec<String>,
    pub since: Option<Time>,
    pub until: Option<Time>,
}

impl Selection {
    pub fn keeps(&self, r: &Record) -> bool {
        let t = r.time();
        (self.hosts.is_empty() || self.hosts.iter().any(|h| h == r.host().as_str()))
            && self.since.is_none_or(|s| t >= s)
            && self.until.is_none_or(|u| t <= u)
    }
}

/// One source in time order: a record is passed on once a record [`REORDER_NS`] newer has been
/// read from the same source, or when [`REORDER_MAX`] records are held. A record later than
/// that is passed on as it comes (slightly out of order).
struct Ordered {
    src: Source,
    /// Held records, sorted by time (equal times in arrival order). A recording is nearly in
    /// order, so a record is mostly appended, or inserted a few places from the end.
    held: VecDeque<(Time, Box<Record>)>,
    newest: Time,
    done: bool,
}

impl Ordered {
    fn next(
        &mut self,
        sel: &Selection,
        bad: &mut dyn FnMut(&Input, u64, &str),
    ) -> Result<Option<Box<Record>>, ReplayError> {
        loop {
            if let Some((t, _)) = self.held.front() {
                let ripe = self.done
                    || self.held.len() >= REORDER_MAX
                    || t.0.saturating_add(REORDER_NS) <= self.newest.0;
                if ripe {
                    let (_, r) = self.held.pop_front().expect("a front");
                    return Ok(Some(r));
                }
            } else if self.done {
                return Ok(None);
            }
            match self.src.next_record(bad)? {
                None => self.done = true,
                Some(r) => {
                    let time = r.time();
                    self.newest = self.newest.max(time);
                    // Past --until by more than the window: nothing later can be selected.
                    if sel
                        .until
                        .is_some_and(|u| self.newest.0 > u.0.saturating_add(REORDER_NS))
                    {
                        self.done = true;
                    }
                    if sel.keeps(&r) {
                        let mut at = self.held.len();
                        while at > 0 && self.held[at - 1].0 > time {
                            at -= 1;
                        }
                        self.held.insert(at, (time, r));
                    }
                }
            }
        }
    }
}

/// The records of all sources, in time order (ties: the earlier source first).
pub struct Merge {
    sources: Vec<Ordered>,
    heads: BinaryHeap<Reverse<(Time, usize)>>,
    next: Vec<Option<Box<Record>>>,
    started: bool,
    sel: Selection,
}

impl Merge {
    pub fn new(sources: Vec<Source>, sel: Selection) -> Merge {
        let n = sources.len();
        Merge {
            sources: sources
                .into_iter()
                .map(|src| Ordered {
                    src,
                    held: VecDeque::new(),
                    newest: Time(0),
                    done: false,
                })
                .collect(),
            heads: BinaryHeap::with_capacity(n),
            next: (0..n).map(|_| None).collect(),
            started: false,
            sel,
        }
    }

    fn fill(
        &mut self,
        i: usize,
        bad: &mut dyn FnMut(&Input, u64, &str),
    ) -> Result<(), ReplayError> {
        if let Some(r) = self.sources[i].next(&self.sel, bad)? {
            self.heads.push(Reverse((r.time(), i)));
            self.next[i] = Some(r);
        }
        Ok(())
    }

    /// The next record of the merged stream; bad lines of any source go to `bad`.
    pub fn next_record(
        &mut self,
        bad: &mut dyn FnMut(&Input, u64, &str),
    ) -> Result<Option<Box<Record>>, ReplayError> {
        if !self.started {
            self.started = true;
            for i in 0..self.sources.len() {
                self.fill(i, bad)?;
            }
        }
        let Some(Reverse((_, i))) = self.heads.pop() else {
            return Ok(None);
        };
        let r = self.next[i].take();
        self.fill(i, bad)?;
        Ok(r)
    }
}
