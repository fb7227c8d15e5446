//! The server's task slots (`max_running_tasks`), handed out in turns by user: a freed slot
//! goes to the waiting user who holds the fewest slots, and among those to the one served
//! longest ago (a user who just had one waits behind one who had none), and each user's
//! clusters wait in the order they asked. One user with many busy clusters then gets one
//! slot in turn with every other waiting user, instead of one per cluster (a user with 60
//! busy clusters made another's task of a tenth of a second wait almost a minute).

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

/// The task slots; cloning gives another handle on the same slots.
#[derive(Clone)]
pub struct TaskSlots(Arc<Mutex<State>>);

struct State {
    /// Slots that nobody holds or waits for.
    free: usize,
    /// The users with waiting claims, in the order they first asked, each with its claims
    /// in order.
    waiting: VecDeque<(String, VecDeque<oneshot::Sender<TaskSlot>>)>,
    /// Every user served since the start (a handful of numbers per user id).
    served: HashMap<String, Served>,
    /// Slots handed out so far: the number of the latest.
    grants: u64,
}

/// How a user has been served.
#[derive(Default, Clone, Copy)]
struct Served {
    /// Slots the user holds now.
    held: usize,
    /// The number of the latest slot handed to the user.
    latest: u64,
}

/// A held task slot; dropping it hands it to the next claim in turn, or frees it.
pub struct TaskSlot {
    /// `None` once handed on.
    slots: Option<TaskSlots>,
    /// The user it was handed to.
    user: String,
}

impl State {
    /// Counts a slot handed to `user`; gives back how the user stood before.
    fn grant(&mut self, user: &str) -> Served {
        self.grants += 1;
        let served = self.served.entry(user.to_owned()).or_default();
        let before = *served;
        served.held += 1;
        served.latest = self.grants;
        before
    }

    /// The waiting user whose turn it is: who holds the fewest slots, then who was served
    /// longest ago, then who asked first.
    fn next_in_turn(&self) -> Option<usize> {
        (0..self.waiting.len()).min_by_key(|&i| {
            let served = self.served.get(&self.waiting[i].0).copied();
            let served = served.unwrap_or_default();
            (served.held, served.latest)
        })
    }
}

impl TaskSlots {
    /// `slots` slots, all free.
    pub fn new(slots: usize) -> Self {
        TaskSlots(Arc::new(Mutex::new(State {
            free: slots,
            waiting: VecDeque::new(),
            served: HashMap::new(),
            grants: 0,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent, so a poisoned lock is usable.
        crate::sync::lock(&self.0)
    }

    /// A slot handed to `user`, counted in `state`.
    fn slot_for(&self, state: &mut State, user: &str) -> TaskSlot {
        state.grant(user);
        TaskSlot {
            slots: Some(self.clone()),
            user: user.to_owned(),
        }
    }

    /// A free slot for a cluster of `user`, if one is free and nobody waits.
    pub fn try_claim(&self, user: &str) -> Option<TaskSlot> {
        let mut state = self.lock();
        (state.free > 0 && state.waiting.is_empty()).then(|| {
            state.free -= 1;
            self.slot_for(&mut state, user)
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
                let _ = sender.send(self.slot_for(&mut state, user));
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

    /// Hands the slot that `user` gave back to the next waiting claim in turn, or frees it.
    fn hand_on(&self, user: &str) {
        let mut state = self.lock();
        if let Some(served) = state.served.get_mut(user) {
            served.held -= 1;
        }
        while let Some(index) = state.next_in_turn() {
            let Some((next, mut claims)) = state.waiting.remove(index) else {
                break;
            };
            let Some(sender) = claims.pop_front() else {
                continue;
            };
            if !claims.is_empty() {
                // The user's next claim waits for its next turn.
                state.waiting.push_back((next.clone(), claims));
            }
            let before = state.grant(&next);
            let slot = TaskSlot {
                slots: Some(self.clone()),
                user: next.clone(),
            };
            match sender.send(slot) {
                Ok(()) => return,
                Err(mut slot) => {
                    // The claim was given up: the slot goes on to the next one, and the
                    // user stands as before.
                    slot.slots = None;
                    state.served.insert(next, before);
                }
            }
        }
        state.free += 1;
    }
}

impl Drop for TaskSlot {
    fn drop(&mut self) {
        if let Some(slots) = self.slots.take() {
            slots.hand_on(&self.user);
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
        let first = slots.try_claim("a").unwrap();
        let second = ready(slots.claim("a")).unwrap();
        assert!(slots.try_claim("b").is_none());
        drop(first);
        let third = slots.try_claim("b").unwrap();
        drop((second, third));
        assert_eq!(slots.lock().free, 2);
    }

    /// A user with many waiting clusters gets one slot in turn with each other user.
    #[test]
    fn users_take_turns() {
        let slots = TaskSlots::new(1);
        let held = slots.try_claim("holder").unwrap();
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
        assert!(slots.try_claim("holder").is_none());
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

    /// A user who just had the slot waits behind a user who had none, also where its next
    /// claim came first (a user's task on a second cluster ran before another user's task
    /// that waited for the same slot); and the user holding the fewest slots goes first.
    #[test]
    fn a_user_just_served_waits_behind_one_not_served() {
        let slots = TaskSlots::new(1);
        let first = ready(slots.claim("a")).unwrap();
        let mut again = Box::pin(slots.claim("a"));
        let mut other = Box::pin(slots.claim("b"));
        drop(first);
        assert!(ready(again.as_mut()).is_none());
        let second = ready(other.as_mut()).expect("b's turn");
        drop(second);
        assert!(ready(again.as_mut()).is_some());

        let slots = TaskSlots::new(2);
        let (held, _kept) = (slots.try_claim("a").unwrap(), slots.try_claim("a").unwrap());
        let mut a = Box::pin(slots.claim("a"));
        let mut b = Box::pin(slots.claim("b"));
        drop(held);
        // a holds one still, b none.
        assert!(ready(a.as_mut()).is_none());
        assert!(ready(b.as_mut()).is_some());
    }

    /// Every path gives its slot back and its count with it: a held slot dropped, a claim
    /// given up while it waited, and one granted at once and dropped unpolled.
    #[test]
    fn every_slot_comes_back_and_is_counted_back() {
        let slots = TaskSlots::new(1);
        let held = slots.try_claim("a").unwrap();
        let given_up = slots.claim("b");
        let mut c = Box::pin(slots.claim("c"));
        drop(given_up);
        drop(held);
        drop(ready(c.as_mut()).unwrap());
        drop(ready(slots.claim("d")).unwrap());
        drop(slots.claim("e"));
        let state = slots.lock();
        assert_eq!(state.free, 1);
        assert!(state.served.values().all(|served| served.held == 0));
        // The claim given up did not count as b's turn.
        assert_eq!(state.served.get("b").map(|served| served.latest), Some(0));
    }

    /// A claim given up (its cluster deleted while it waited) passes the slot on.
    #[test]
    fn a_claim_given_up_passes_its_turn_on() {
        let slots = TaskSlots::new(1);
        let held = slots.try_claim("z").unwrap();
        let given_up = slots.claim("a");
        let waiting = slots.claim("b");
        drop(given_up);
        drop(held);
        assert!(ready(waiting).is_some());
        assert_eq!(slots.lock().free, 1);
        // One given up with nobody behind it frees the slot.
        let held = slots.try_claim("z").unwrap();
        drop(slots.claim("c"));
        drop(held);
        assert_eq!(slots.lock().free, 1);
    }
}
