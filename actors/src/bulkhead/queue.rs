//! The bulkhead's wait queue: one FIFO per caller, served round robin.
//!
//! This is deficit round robin with a quantum of one call: every call costs one slot
//! and nobody knows its hold time in advance, so each turn a caller with waiters gets
//! exactly one slot and goes to the back of the ring. A caller with 64 waiters so delays
//! another caller's waiter by at most one turn of the ring (one slot per caller waiting),
//! not by its 64 calls; within one caller the order stays FIFO.
//!
//! Bounds: at most `queue_capacity` waiters in all and `max_queued_per_caller` per
//! caller (the owner checks both before [`FairQueue::push`]); the ring and the map hold
//! only callers with waiters, so they are bounded by the waiters.

use std::collections::{HashMap, VecDeque};

use tokio::sync::oneshot;

/// One waiter: its ticket and where its slot is handed to it.
pub(super) struct Waiter {
    ticket: u64,
    grant: oneshot::Sender<()>,
}

#[derive(Default)]
pub(super) struct FairQueue {
    /// Waiters of each caller that has some, oldest first.
    by_caller: HashMap<u64, VecDeque<Waiter>>,
    /// Callers with waiters, in the order they are served.
    ring: VecDeque<u64>,
    len: usize,
    next_ticket: u64,
}

impl FairQueue {
    /// Waiters in all.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waiters of `caller`.
    pub(super) fn len_of(&self, caller: u64) -> usize {
        self.by_caller.get(&caller).map_or(0, VecDeque::len)
    }

    /// Waiters served before a new waiter of `caller`, under round robin: each caller in
    /// the ring is served once per turn, and the new waiter's turn comes after the
    /// caller's own waiters.
    pub(super) fn ahead_of_new(&self, caller: u64) -> usize {
        let turns = self.len_of(caller) + 1;
        let others: usize = self
            .by_caller
            .iter()
            .filter(|(c, _)| **c != caller)
            .map(|(_, q)| q.len().min(turns))
            .sum();
        others + turns - 1
    }

    /// Queues a waiter of `caller`; returns its ticket (for [`FairQueue::remove`]).
    pub(super) fn push(&mut self, caller: u64, grant: oneshot::Sender<()>) -> u64 {
        let ticket = self.next_ticket;
        self.next_ticket += 1;
        let queue = self.by_caller.entry(caller).or_default();
        if queue.is_empty() {
            self.ring.push_back(caller);
        }
        queue.push_back(Waiter { ticket, grant });
        self.len += 1;
        ticket
    }

    /// The next waiter in round-robin order: the caller at the front of the ring gives
    /// its oldest waiter and goes to the back if it has more.
    pub(super) fn pop(&mut self) -> Option<oneshot::Sender<()>> {
        let caller = self.ring.pop_front()?;
        let queue = self.by_caller.get_mut(&caller)?;
        let waiter = queue.pop_front()?;
        if queue.is_empty() {
            self.by_caller.remove(&caller);
        } else {
            self.ring.push_back(caller);
        }
        self.len -= 1;
        Some(waiter.grant)
    }

    /// Takes out a waiter that gave up (deadline, cancellation); false when it is not
    /// queued any more (it was granted its slot meanwhile).
    pub(super) fn remove(&mut self, caller: u64, ticket: u64) -> bool {
        let Some(queue) = self.by_caller.get_mut(&caller) else {
            return false;
        };
        let Some(at) = queue.iter().position(|w| w.ticket == ticket) else {
            return false;
        };
        queue.remove(at);
        if queue.is_empty() {
            self.by_caller.remove(&caller);
            self.ring.retain(|c| *c != caller);
        }
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn waiter(q: &mut FairQueue, caller: u64) -> (u64, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        (q.push(caller, tx), rx)
    }

    #[test]
    fn callers_take_turns_and_each_stays_fifo() {
        let mut q = FairQueue::default();
        let heavy: Vec<_> = (0..4).map(|_| waiter(&mut q, 1)).collect();
        let mut light = waiter(&mut q, 2);
        assert_eq!(q.len(), 5);
        assert_eq!(
            q.ahead_of_new(2),
            3,
            "heavy, light, heavy, then a new light one"
        );
        q.pop().unwrap().send(()).unwrap(); // heavy #0
        q.pop().unwrap().send(()).unwrap(); // light, second in line despite 4 heavy
        assert!(light.1.try_recv().is_ok());
        let mut rest: Vec<_> = heavy.into_iter().skip(1).collect();
        for (_, rx) in &mut rest {
            assert!(rx.try_recv().is_err());
            q.pop().unwrap().send(()).unwrap();
            assert!(rx.try_recv().is_ok(), "heavy waiters stay in their order");
        }
        assert!(q.is_empty() && q.ring.is_empty() && q.by_caller.is_empty());
    }

    #[test]
    fn removing_the_last_waiter_of_a_caller_leaves_the_ring() {
        let mut q = FairQueue::default();
        let (a, _ra) = waiter(&mut q, 1);
        let (_b, _rb) = waiter(&mut q, 2);
        assert!(q.remove(1, a));
        assert!(!q.remove(1, a), "removed once");
        assert_eq!(q.ring, VecDeque::from([2]));
        assert_eq!(q.len(), 1);
    }
}
