//! How many streams may be open: the server's `MAX_CONNECTIONS`, each
//! user's `MAX_SOCKETS_PER_USER` and each client address's
//! `MAX_STREAMS_PER_ADDR`, counted alike for WebSockets and HTTP event
//! streams.
//!
//! [`Admission::admit`] hands out one [`StreamPermit`] per open stream; the
//! permit holds all three places and frees them when dropped, so no path
//! can forget to give one back. A refusal is a [`Crowded`], whose text is
//! written here once for both transports.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex},
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::address::AddrKey;
use crate::{
    protocol::{ErrorCode, ServerFrame, UserId},
    server::{
        cluster::{Cluster, CountedSocket},
        metrics::{AddressLimit, Metrics},
    },
};

/// The server's, every user's and every address's open streams.
#[derive(Debug)]
pub struct Admission {
    server: Arc<Semaphore>,
    users: Arc<Slots<UserId>>,
    addresses: Arc<Slots<AddrKey>>,
    metrics: Arc<Metrics>,
}

/// What an open stream holds: one of the server's places, one of its
/// user's and one of its address's. Dropping it frees all three.
#[derive(Debug)]
pub struct StreamPermit {
    _server: OwnedSemaphorePermit,
    _user: Slot<UserId>,
    _address: Slot<AddrKey>,
    /// In cluster mode, the stream counted in the user's streams over
    /// every instance.
    _cluster: Option<CountedSocket>,
}

/// Why a stream was not admitted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crowded {
    /// The server holds `MAX_CONNECTIONS` streams.
    Server,
    /// The user holds `max` streams already.
    User { max: usize },
    /// The client's address holds `max` streams already (all its identities).
    Address { max: usize },
}

impl Crowded {
    /// The reason, as both transports say it.
    pub fn reason(self) -> String {
        match self {
            Crowded::Server => "the server holds its maximum number of connections".to_owned(),
            Crowded::User { max } => {
                format!("too many open connections for this user (at most {max}); close a tab")
            }
            Crowded::Address { max } => format!(
                "too many open connections from your network address (at most {max}); close a tab"
            ),
        }
    }

    /// The `error` frame: `busy` for the server, `rate_limited` for the user.
    pub fn to_frame(self) -> ServerFrame {
        let code = match self {
            Crowded::Server => ErrorCode::Busy,
            Crowded::User { .. } | Crowded::Address { .. } => ErrorCode::RateLimited,
        };
        ServerFrame::error(code, self.reason())
    }
}

impl Admission {
    pub fn new(
        max_connections: usize,
        max_per_user: usize,
        max_per_address: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            server: Arc::new(Semaphore::new(max_connections)),
            users: Slots::new(max_per_user),
            addresses: Slots::new(max_per_address),
            metrics,
        }
    }

    /// A place for one more stream of `user` from `address`: the server's
    /// first, then the address's, then the user's.
    pub fn admit(&self, user: &UserId, address: AddrKey) -> Result<StreamPermit, Crowded> {
        let server = self
            .server
            .clone()
            .try_acquire_owned()
            .map_err(|_| Crowded::Server)?;
        let Some(address) = self.addresses.open(&address) else {
            self.metrics.address_limited(AddressLimit::Streams);
            return Err(Crowded::Address {
                max: self.addresses.max,
            });
        };
        let user = self.users.open(user).ok_or(Crowded::User {
            max: self.users.max,
        })?;
        Ok(StreamPermit {
            _server: server,
            _user: user,
            _address: address,
            _cluster: None,
        })
    }

    /// [`Admission::admit`], and in cluster mode the user's
    /// `MAX_SOCKETS_PER_USER` over every instance too. When the live state
    /// cannot be reached, this instance's count alone decides (a stream is
    /// not refused for an outage).
    pub async fn admit_everywhere(
        &self,
        user: &UserId,
        address: AddrKey,
        cluster: Option<&Arc<Cluster>>,
    ) -> Result<StreamPermit, Crowded> {
        let mut permit = self.admit(user, address)?;
        let Some(cluster) = cluster else {
            return Ok(permit);
        };
        match cluster.admit_socket(user, self.users.max).await {
            Ok(Some(counted)) => permit._cluster = Some(counted),
            Ok(None) => {
                return Err(Crowded::User {
                    max: self.users.max,
                })
            }
            Err(err) => {
                tracing::warn!(error = %err, "could not count the stream over the cluster; counted here only");
            }
        }
        Ok(permit)
    }
}

/// Counts open streams per key (a user, an address).
#[derive(Debug)]
struct Slots<K> {
    max: usize,
    open: Mutex<HashMap<K, usize>>,
}

/// Holds one of a key's stream slots; frees it on drop.
#[derive(Debug)]
struct Slot<K: Hash + Eq> {
    slots: Arc<Slots<K>>,
    key: K,
}

impl<K: Hash + Eq + Clone> Slots<K> {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for `key`, or `None` when it already has the maximum.
    fn open(self: &Arc<Self>, key: &K) -> Option<Slot<K>> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.max {
            if *count == 0 {
                open.remove(key);
            }
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: self.clone(),
            key: key.clone(),
        })
    }
}

impl<K: Hash + Eq> Drop for Slot<K> {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(last: u8) -> AddrKey {
        AddrKey::of(std::net::IpAddr::from([192, 0, 2, last]))
    }

    #[test]
    fn socket_slots_are_counted_and_freed() {
        let admission = Admission::new(10, 2, 10, Arc::default());
        let user: UserId = "u".into();
        let a = admission.admit(&user, addr(1)).expect("first");
        let _b = admission.admit(&user, addr(1)).expect("second");
        assert_eq!(
            admission.admit(&user, addr(1)).err(),
            Some(Crowded::User { max: 2 })
        );
        drop(a);
        assert!(admission.admit(&user, addr(1)).is_ok());
    }

    #[test]
    fn the_server_cap_holds_across_users_and_frees_on_drop() {
        let admission = Admission::new(2, 5, 5, Arc::default());
        let a = admission.admit(&"a".into(), addr(1)).expect("first");
        let _b = admission.admit(&"b".into(), addr(2)).expect("second");
        assert_eq!(
            admission.admit(&"c".into(), addr(3)).err(),
            Some(Crowded::Server)
        );
        drop(a);
        assert!(admission.admit(&"c".into(), addr(3)).is_ok());
    }

    #[test]
    fn an_address_cap_holds_across_its_identities() {
        let admission = Admission::new(10, 5, 2, Arc::default());
        let a = admission.admit(&"a".into(), addr(1)).expect("first");
        let _b = admission.admit(&"b".into(), addr(1)).expect("second");
        assert_eq!(
            admission.admit(&"c".into(), addr(1)).err(),
            Some(Crowded::Address { max: 2 }),
            "a fresh identity does not dodge the address's cap"
        );
        assert!(admission.admit(&"c".into(), addr(2)).is_ok());
        drop(a);
        assert!(admission.admit(&"c".into(), addr(1)).is_ok());
    }

    #[test]
    fn a_refusal_leaves_no_place_taken() {
        let admission = Admission::new(2, 1, 1, Arc::default());
        let _a = admission.admit(&"u".into(), addr(1)).expect("first");
        assert!(admission.admit(&"u".into(), addr(2)).is_err());
        assert!(admission.admit(&"v".into(), addr(1)).is_err());
        assert!(
            admission.admit(&"v".into(), addr(2)).is_ok(),
            "the refusals freed their places"
        );
    }
}
