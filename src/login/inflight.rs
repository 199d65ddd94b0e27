//! Logins in flight per client connection and per client address: at most
//! [`MAX_PER_CONNECTION`] and [`MAX_PER_ADDRESS`], counted from the moment the token endpoint has
//! read a password grant until it answers (waiting for a failure slot and hashing included).
//! Beyond either, the login is refused at once (`429` + `Retry-After: 1`), before any password
//! work or waiting.
//!
//! Without these, one HTTP/2 connection (up to 256 streams) or one client address could fill the
//! hashing queue (`admission.rs`, whose `503` is the global backstop) and starve every other
//! client's logins. Owns only the counts; failure counting is `throttle.rs`, the hashing queue
//! `admission.rs`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU32, Ordering};

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;

/// Logins in flight on one connection. HTTP/1.1 carries one request at a time, so only HTTP/2
/// multiplexing gets near it; 4 leaves room for a client's retries and parallel tabs while
/// keeping one connection's share of the hashing queue (65 places with one hashing thread)
/// small.
pub const MAX_PER_CONNECTION: u32 = 4;

/// Logins in flight from one client address: four such connections, or a household or office
/// behind one NAT logging in at the same moment. Sixteen ~30 ms hashes are half a second of one
/// hashing thread, so a single address can delay the others' logins by that much at most.
pub const MAX_PER_ADDRESS: u32 = 16;

/// The logins in flight on one client connection; made per connection (`server/conn.rs`) and
/// shared by its requests.
#[derive(Debug, Default)]
pub struct ConnLogins {
    in_flight: AtomicU32,
}

/// Which limit refused a login.
#[derive(Clone, Copy, Debug, Eq, PartialEq, thiserror::Error)]
pub enum TooManyInFlight {
    #[error("too many logins in flight on this connection")]
    Connection,
    #[error("too many logins in flight from this client address")]
    Address,
}

impl TooManyInFlight {
    /// `"connection"` or `"address"`, for the audit log.
    pub fn by(self) -> &'static str {
        match self {
            Self::Connection => "connection",
            Self::Address => "address",
        }
    }
}

/// Logins in flight per client address; an address is forgotten when its count drops to zero.
#[derive(Debug, Default)]
pub(super) struct AddrLogins {
    counts: DashMap<IpAddr, u32>,
}

impl AddrLogins {
    /// Counts one more login on `conn` from `addr`, or refuses it when either is at its limit.
    pub(super) fn admit<'a>(
        &'a self,
        conn: &'a ConnLogins,
        addr: IpAddr,
    ) -> Result<LoginPermit<'a>, TooManyInFlight> {
        if conn.in_flight.fetch_add(1, Ordering::AcqRel) >= MAX_PER_CONNECTION {
            conn.in_flight.fetch_sub(1, Ordering::AcqRel);
            return Err(TooManyInFlight::Connection);
        }
        let on_conn = OnConn(conn);
        {
            let mut count = self.counts.entry(addr).or_insert(0);
            // Refused only at a count above zero, so no empty entry is left behind.
            if *count >= MAX_PER_ADDRESS {
                return Err(TooManyInFlight::Address);
            }
            *count += 1;
        }
        Ok(LoginPermit {
            _on_conn: on_conn,
            addrs: self,
            addr,
        })
    }

    pub(super) fn len(&self) -> usize {
        self.counts.len()
    }

    fn release(&self, addr: IpAddr) {
        if let Entry::Occupied(mut entry) = self.counts.entry(addr) {
            let count = entry.get_mut();
            *count = count.saturating_sub(1);
            if *count == 0 {
                entry.remove();
            }
        }
    }
}

/// One login in flight; dropping it (the answer is sent, or the client went away) frees its
/// place on the connection and the address.
#[derive(Debug)]
#[must_use = "the login counts as in flight only while the permit lives"]
pub struct LoginPermit<'a> {
    _on_conn: OnConn<'a>,
    addrs: &'a AddrLogins,
    addr: IpAddr,
}

impl Drop for LoginPermit<'_> {
    fn drop(&mut self) {
        self.addrs.release(self.addr);
    }
}

/// The connection's share of a permit (also released when the address refuses).
#[derive(Debug)]
struct OnConn<'a>(&'a ConnLogins);

impl Drop for OnConn<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_connection_and_an_address_have_a_few_logins_in_flight_at_most() {
        let logins = AddrLogins::default();
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let conns: Vec<ConnLogins> = (0..5).map(|_| ConnLogins::default()).collect();
        let on_first: Vec<_> = (0..MAX_PER_CONNECTION)
            .map(|_| logins.admit(&conns[0], addr).unwrap())
            .collect();
        assert_eq!(
            logins.admit(&conns[0], addr).unwrap_err(),
            TooManyInFlight::Connection
        );
        let others: Vec<_> = (1..4)
            .flat_map(|c| (0..MAX_PER_CONNECTION).map(move |_| c))
            .map(|c| logins.admit(&conns[c], addr).unwrap())
            .collect();
        assert_eq!(
            logins.admit(&conns[4], addr).unwrap_err(),
            TooManyInFlight::Address
        );
        assert_eq!(
            conns[4].in_flight.load(Ordering::Acquire),
            0,
            "a refused login holds no place"
        );
        let elsewhere = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let other_addr = logins.admit(&conns[4], elsewhere).unwrap();
        drop(on_first);
        assert!(logins.admit(&conns[0], addr).is_ok(), "room again");
        drop((others, other_addr));
        assert_eq!(logins.len(), 0, "addresses are forgotten at zero");
        assert!(conns
            .iter()
            .all(|c| c.in_flight.load(Ordering::Acquire) == 0));
    }
}
