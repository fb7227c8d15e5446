//! Shares of a limited resource per client network, so that one client cannot take it all.
//!
//! A client network is an IPv4 address on its own, or an IPv6 address's /64 (a host may use
//! any address of its /64, so counting addresses would count nothing; hosts that share a /64
//! share its shares, as hosts behind one NAT share their address). Each network gets the
//! same number of shares; a share is held until
//! it is dropped. The server uses this for its connections (a network beyond its share is
//! refused at once) and for password checks (a network beyond its share waits its turn, so
//! that a flood of logins from one network cannot keep the password threads from others).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Semaphore;

/// The network of a client address: IPv4 addresses (also written as IPv6) on their own,
/// IPv6 ones by their /64.
pub fn network(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// Up to a fixed number of shares for each client network. Cloning gives another handle
/// on the same shares.
#[derive(Clone)]
pub struct PerNetwork(Arc<Networks>);

struct Networks {
    /// Shares of each network.
    each: usize,
    /// The networks that hold or wait for a share; a network leaves when the last of its
    /// [`Share`]s (held or waited for) is dropped.
    held: Mutex<HashMap<IpAddr, Arc<Semaphore>>>,
}

impl Networks {
    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Arc<Semaphore>>> {
        // Every update is a single insert or remove: a poisoned lock is still consistent.
        crate::sync::lock(&self.held)
    }
}

/// One share of a network, given back when dropped.
pub struct Share {
    networks: Arc<Networks>,
    network: IpAddr,
    /// The network's shares; `None` only while the share is dropped.
    semaphore: Option<Arc<Semaphore>>,
    /// Whether this share was granted (one that is still waited for holds none).
    granted: bool,
}

impl std::fmt::Debug for Share {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Share")
            .field("network", &self.network)
            .field("granted", &self.granted)
            .finish()
    }
}

impl PerNetwork {
    /// `each` shares per network (at least one).
    pub fn new(each: usize) -> Self {
        PerNetwork(Arc::new(Networks {
            each: each.clamp(1, Semaphore::MAX_PERMITS),
            held: Mutex::default(),
        }))
    }

    /// The shares of each network.
    pub fn each(&self) -> usize {
        self.0.each
    }

    /// A share of `address`'s network, not granted yet.
    fn ask(&self, address: IpAddr) -> Share {
        let network = network(address);
        let each = self.0.each;
        let semaphore = self
            .0
            .lock()
            .entry(network)
            .or_insert_with(|| Arc::new(Semaphore::new(each)))
            .clone();
        Share {
            networks: self.0.clone(),
            network,
            semaphore: Some(semaphore),
            granted: false,
        }
    }

    /// A share of `address`'s network if one is free now.
    pub fn try_take(&self, address: IpAddr) -> Option<Share> {
        let mut share = self.ask(address);
        let permit = share.semaphore.as_ref()?.try_acquire().ok()?;
        permit.forget();
        share.granted = true;
        Some(share)
    }

    /// A share of `address`'s network, waiting in turn (first come, first served) while
    /// the network holds all of its shares.
    pub async fn take(&self, address: IpAddr) -> Share {
        let mut share = self.ask(address);
        if let Some(semaphore) = &share.semaphore
            && let Ok(permit) = semaphore.acquire().await
        {
            permit.forget();
            share.granted = true;
        }
        share
    }

    /// How many networks hold or wait for shares now.
    #[cfg(test)]
    fn networks(&self) -> usize {
        self.0.lock().len()
    }
}

impl Drop for Share {
    fn drop(&mut self) {
        let mut held = self.networks.lock();
        if let Some(semaphore) = self.semaphore.take() {
            if self.granted {
                semaphore.add_permits(1);
            }
            drop(semaphore);
        }
        // New handles on a network's semaphore are made under the lock only, so a count of
        // one (the table's) means that no share of the network is held or waited for.
        if held
            .get(&self.network)
            .is_some_and(|semaphore| Arc::strong_count(semaphore) == 1)
        {
            held.remove(&self.network);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::net::Ipv4Addr;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    const HERE: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const THERE: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn each_network_has_its_own_shares() {
        let shares = PerNetwork::new(2);
        let first = shares.try_take(HERE).expect("a free share");
        let second = shares.try_take(HERE).expect("a free share");
        assert!(shares.try_take(HERE).is_none(), "a third share");
        let there = shares.try_take(THERE).expect("another network's share");
        drop(first);
        let again = shares.try_take(HERE).expect("a share given back");
        assert!(shares.try_take(HERE).is_none());
        drop((second, again, there));
        assert_eq!(
            shares.networks(),
            0,
            "networks without shares are forgotten"
        );
    }

    #[test]
    fn waiting_takes_turns_and_a_withdrawn_wait_leaves_nothing() {
        let shares = PerNetwork::new(1);
        let mut context = Context::from_waker(Waker::noop());
        let held = shares.try_take(HERE).expect("a free share");
        let mut first = pin!(shares.take(HERE));
        assert!(first.as_mut().poll(&mut context).is_pending());
        {
            let mut second = pin!(shares.take(HERE));
            assert!(second.as_mut().poll(&mut context).is_pending());
            // Another network does not wait behind this one.
            let mut there = pin!(shares.take(THERE));
            assert!(matches!(there.as_mut().poll(&mut context), Poll::Ready(_)));
        }
        drop(held);
        // The first in line gets the share given back.
        let Poll::Ready(share) = first.as_mut().poll(&mut context) else {
            panic!("the share given back went to no one");
        };
        assert!(share.granted);
        assert!(shares.try_take(HERE).is_none());
        drop(share);
        assert_eq!(shares.networks(), 0);
    }

    #[test]
    fn a_wait_withdrawn_after_the_last_holder_left_forgets_the_network() {
        let shares = PerNetwork::new(1);
        let mut context = Context::from_waker(Waker::noop());
        let held = shares.try_take(HERE).expect("a free share");
        {
            let mut waiting = pin!(shares.take(HERE));
            assert!(waiting.as_mut().poll(&mut context).is_pending());
            drop(held);
            // The waiter is dropped without being polled again.
        }
        assert_eq!(shares.networks(), 0);
        assert!(shares.try_take(HERE).is_some());
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::7".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(network(a), network(b));
        assert_ne!(network(a), network(other));
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        assert_eq!(network(mapped), THERE);
        assert_eq!(network(THERE), THERE);
        let shares = PerNetwork::new(1);
        let _held = shares.try_take(a).expect("a free share");
        assert!(shares.try_take(b).is_none(), "the same /64");
        assert!(shares.try_take(other).is_some());
    }
}
