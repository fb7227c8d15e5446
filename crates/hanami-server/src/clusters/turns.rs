//! The server's task slots (`max_running_tasks`), handed out in turns by user: a freed slot
//! goes to the next user in turn who has a cluster waiting, and each user's clusters wait in
//! the order they asked. One user with many busy clusters then gets one slot in turn with
//! every other waiting user, instead of one per cluster (a user with 60 busy clusters made
//! another's task of a tenth of a second wait almost a minute).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The task slots; cloning gives another handle on the same slots.
#[derive(Clone)]
pub struct TaskSlots(Arc<Mutex<State>>);

struct State {
    /// Slots that nobody holds or waits for.
    free: usize,
    /// The users with waiting claims, in turn order, each with its claims in order.
    waiting: VecDeque<(String, VecDeque<oneshot::Sender<TaskSlot>>)>,
}

/// A held task slot; dropping it hands it to the next claim in turn, or frees it.
pub struct TaskSlot(Option<TaskSlots>);

impl TaskSlots {
    /// `slots` slots, all free.
    pub fn new(slots: usize) -> Self {
        TaskSlots(Arc::new(Mutex::new(State {
            free: slots,
            waiting: VecDeque::new(),
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A free slot, if one is free and nobody waits.
    pub fn try_claim(&self) -> Option<TaskSlot> {
        let mut state = self.lock();
        (state.free > 0 && state.waiting.is_empty()).then(|| {
            state.free -= 1;
            TaskSlot(Some(self.clone()))
        })
    }

    /// A slot for a cluster of `user`: its place in the turns is taken now, before the
    /// returned future is first polled. Dropping the future gives the place up.
    pub fn claim(&self, user: &str) -> impl Future<Output = TaskSlot> + Send + 'static {
        let (sender, receiver) = oneshot::channel();
        {
            let mut state = self.lock();
            if state.free > 0 && state.waiting.is_empty() {
                state.free -= 1;
                // Cannot fail: the receiver is here.
                let _ = sender.send(TaskSlot(Some(self.clone())));
            } else if let Some((_, claims)) = state.waiting.iter_mut().find(|(u, _)| u == user) {
                claims.push_back(sender);
            } else {
                state
                    .waiting
                    .push_back((user.to_owned(), VecDeque::from([sender])));
            }
        }
        async move {
            // The slots outlive every claim (the sender is dropped only after a send).
            receiver.await.expect("a claimed task slot is always sent")
        }
    }

    /// Hands a slot that was given back to the next waiting claim in turn, or frees it.
    fn hand_on(&self) {
        let mut state = self.lock();
        while let Some((user, mut claims)) = state.waiting.pop_front() {
            let Some(sender) = claims.pop_front() else {
                continue;
            };
            if !claims.is_empty() {
                // The user's next claim waits for its next turn, behind the others.
                state.waiting.push_back((user, claims));
            }
            match sender.send(TaskSlot(Some(self.clone()))) {
                Ok(()) => return,
                Err(mut slot) => {
                    // The claim was given up: the slot goes on to the next one.
                    slot.0 = None;
                }
            }
        }
        state.free += 1;
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        if let Some(slots) = self.0.take() {
            slots.hand_on();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `future` to its end if it is ready now.
    fn ready<T>(future: impl Future<Output = T>) -> Option<T> {
        let mut future = std::pin::pin!(future);
        let waker = std::task::Waker::noop();
        match future
            .as_mut()
            .poll(&mut std::task::Context::from_waker(waker))
        {
            std::task::Poll::Ready(value) => Some(value),
            std::task::Poll::Pending => None,
        }
    }

    #[test]
    fn free_slots_are_taken_at_once_and_come_back() {
        let slots = TaskSlots::new(2);
        let first = slots.try_claim().unwrap();
        let second = ready(slots.claim("a")).unwrap();
        assert!(slots.try_claim().is_none());
        drop(first);
        let third = slots.try_claim().unwrap();
        drop((second, third));
        assert_eq!(slots.lock().free, 2);
    }

    /// A user with many waiting clusters gets one slot in turn with each other user.
    #[test]
    fn users_take_turns() {
        let slots = TaskSlots::new(1);
        let held = slots.try_claim().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let mut claims = Vec::new();
        for (user, n) in [
            ("flood", 0),
            ("flood", 1),
            ("flood", 2),
            ("small", 0),
            ("other", 0),
        ] {
            let claim = slots.claim(user);
            let tx = tx.clone();
            claims.push(async move {
                let slot = claim.await;
                tx.send(format!("{user}{n}")).unwrap();
                slot
            });
        }
        // Nobody gets a slot while it is held, and a free slot waits for nobody else.
        assert!(slots.try_claim().is_none());
        let mut claims: Vec<_> = claims.into_iter().map(Box::pin).collect();
        let mut order = Vec::new();
        let mut slot = held;
        for _ in 0..5 {
            drop(slot);
            let (i, next) = claims
                .iter_mut()
                .enumerate()
                .find_map(|(i, claim)| ready(claim.as_mut()).map(|slot| (i, slot)))
                .expect("the freed slot went to a claim");
            drop(claims.remove(i));
            order.push(rx.try_recv().unwrap());
            slot = next;
        }
        assert_eq!(order, ["flood0", "small0", "other0", "flood1", "flood2"]);
        drop(slot);
        assert_eq!(slots.lock().free, 1);
    }

    /// A claim given up (its cluster deleted while it waited) passes the slot on.
    #[test]
    fn a_claim_given_up_passes_its_turn_on() {
        let slots = TaskSlots::new(1);
        let held = slots.try_claim().unwrap();
        let given_up = slots.claim("a");
        let waiting = slots.claim("b");
        drop(given_up);
        drop(held);
        assert!(ready(waiting).is_some());
        assert_eq!(slots.lock().free, 1);
        // One given up with nobody behind it frees the slot.
        let held = slots.try_claim().unwrap();
        drop(slots.claim("c"));
        drop(held);
        assert_eq!(slots.lock().free, 1);
    }
}
