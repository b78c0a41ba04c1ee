//! The per-worker connection table.
//!
//! Connections live in a slab preallocated at start-up; a `hashbrown::HashTable<u32>` indexes
//! each connection under both of its directions (client→VIP and real server→local address), so
//! one probe finds the entry whichever way a packet travels. Inserting never allocates: the
//! slab and the index are sized for the configured capacity and a full table refuses new
//! connections (counted by the caller) without touching the established ones. Expiry is a
//! bounded incremental sweep over the slab, so no per-connection timer nodes are needed.
//!
//! Known cost: after heavy churn hashbrown clears its tombstones with an in-place rehash of the
//! whole index, a pause proportional to the table size (never an allocation).

use std::net::Ipv4Addr;

use hashbrown::HashTable;

/// Direction of a packet relative to its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// Client → VIP, forwarded to the real server.
    Inbound,
    /// Real server → local address, forwarded back to the client.
    Outbound,
}

/// The 5-tuple a packet carries, as seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

impl Tuple {
    /// The tuple packed in two words, for hashing and comparing without branches.
    fn packed(&self) -> (u64, u64) {
        let addrs = (u64::from(self.src.to_bits()) << 32) | u64::from(self.dst.to_bits());
        let rest =
            (u64::from(self.sport) << 32) | (u64::from(self.dport) << 16) | u64::from(self.proto);
        (addrs, rest)
    }
}

/// One tracked connection: both directions in 40 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    /// Client address and port (source of inbound packets).
    pub cip: u32,
    /// VIP (destination of inbound packets).
    pub vip: u32,
    /// Local address (source the real server sees); equals `cip` when not FullNAT.
    pub lip: u32,
    /// Real server address.
    pub rip: u32,
    pub cport: u16,
    pub vport: u16,
    pub lport: u16,
    pub rport: u16,
    /// Counter slot of the real server (see `stats::SlotCounters`).
    pub rs_slot: u32,
    /// Expiry time in engine milliseconds (wrapping).
    pub expires: u32,
    /// Counter slot of the service.
    pub svc_slot: u16,
    /// IP protocol; 0 marks a free slab entry.
    pub proto: u8,
    /// Protocol state (`tcp_state::TcpState as u8`; 0 for UDP).
    pub state: u8,
    /// [`Conn::DEAD`] and future flags.
    pub flags: u8,
}

impl Conn {
    /// Its real server or service was deleted: the next segment in either direction is
    /// answered by resetting both ends, and the entry goes.
    pub const DEAD: u8 = 1;

    pub fn is_dead(&self) -> bool {
        self.flags & Self::DEAD != 0
    }

    /// The tuple of packets travelling in `dir`.
    pub fn tuple(&self, dir: Dir) -> Tuple {
        match dir {
            Dir::Inbound => Tuple {
                proto: self.proto,
                src: Ipv4Addr::from_bits(self.cip),
                sport: self.cport,
                dst: Ipv4Addr::from_bits(self.vip),
                dport: self.vport,
            },
            Dir::Outbound => Tuple {
                proto: self.proto,
                src: Ipv4Addr::from_bits(self.rip),
                sport: self.rport,
                dst: Ipv4Addr::from_bits(self.lip),
                dport: self.lport,
            },
        }
    }

    /// Whether the connection's deadline has passed at `now_ms` (wrap-safe for deadlines
    /// within 24 days, far above any timeout).
    pub fn is_expired(&self, now_ms: u32) -> bool {
        (now_ms.wrapping_sub(self.expires) as i32) >= 0
    }
}

// The table's memory budget depends on it (see the module comment).
const _: () = assert!(std::mem::size_of::<Conn>() == 40);

/// Handle to a connection in the table, valid until the connection is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId(u32);

/// Why a connection could not be inserted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsertError {
    /// The table holds its capacity.
    Full,
    /// A connection already owns one of the two tuples.
    Exists,
}

/// A worker's connection table.
pub struct ConnTable {
    slab: Box<[Conn]>,
    free: Vec<u32>,
    index: HashTable<u32>,
    seed: u64,
    sweep_cursor: usize,
}

impl ConnTable {
    /// A table for at most `capacity` connections; all memory is taken here.
    pub fn new(capacity: usize, seed: u64) -> ConnTable {
        let capacity = capacity.clamp(1, (u32::MAX >> 1) as usize);
        ConnTable {
            slab: vec![Conn::default(); capacity].into_boxed_slice(),
            free: (0..capacity as u32).rev().collect(),
            // Two keys per connection. hashbrown reclaims tombstones by rehashing, and it
            // rehashes in place (no allocation) only while it is at most half full: room for
            // four keys per connection keeps every rehash in place.
            index: HashTable::with_capacity(capacity * 4),
            seed,
            sweep_cursor: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slab.len()
    }

    pub fn len(&self) -> usize {
        self.slab.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn hash(&self, t: &Tuple) -> u64 {
        hash_tuple(self.seed, t)
    }

    /// Entry value in the index: slab position and direction bit.
    fn entry(pos: u32, dir: Dir) -> u32 {
        (pos << 1) | u32::from(dir == Dir::Outbound)
    }

    fn decode(v: u32) -> (u32, Dir) {
        let dir = if v & 1 == 1 {
            Dir::Outbound
        } else {
            Dir::Inbound
        };
        (v >> 1, dir)
    }

    /// Finds the connection a packet with tuple `t` belongs to, and the packet's direction.
    #[inline]
    pub fn lookup(&self, t: &Tuple) -> Option<(ConnId, Dir)> {
        self.find(self.hash(t), t)
    }

    /// [`Self::lookup`] with the tuple's hash already computed.
    #[inline]
    fn find(&self, h: u64, t: &Tuple) -> Option<(ConnId, Dir)> {
        let slab = &self.slab;
        self.index
            .find(h, |&v| {
                let (pos, dir) = Self::decode(v);
                slab[pos as usize].tuple(dir) == *t
            })
            .map(|&v| {
                let (pos, dir) = Self::decode(v);
                (ConnId(pos), dir)
            })
    }

    /// Inserts `conn` under both of its tuples.
    pub fn insert(&mut self, conn: Conn) -> Result<ConnId, InsertError> {
        let keys = [Dir::Inbound, Dir::Outbound].map(|d| {
            let t = conn.tuple(d);
            (self.hash(&t), t, d)
        });
        if keys.iter().any(|(h, t, _)| self.find(*h, t).is_some()) {
            return Err(InsertError::Exists);
        }
        let pos = self.free.pop().ok_or(InsertError::Full)?;
        self.slab[pos as usize] = conn;
        for (h, _, dir) in keys {
            let (slab, seed) = (&self.slab, self.seed);
            // Room for four keys per connection was reserved, so the hasher (only used to
            // rehash) never runs on the fast path; it is still correct.
            self.index.insert_unique(h, Self::entry(pos, dir), |&v| {
                let (p, d) = Self::decode(v);
                hash_tuple(seed, &slab[p as usize].tuple(d))
            });
        }
        Ok(ConnId(pos))
    }

    pub fn get(&self, id: ConnId) -> &Conn {
        &self.slab[id.0 as usize]
    }

    pub fn get_mut(&mut self, id: ConnId) -> &mut Conn {
        &mut self.slab[id.0 as usize]
    }

    /// Removes a connection and returns it.
    pub fn remove(&mut self, id: ConnId) -> Conn {
        let conn = self.slab[id.0 as usize];
        for dir in [Dir::Inbound, Dir::Outbound] {
            let h = self.hash(&conn.tuple(dir));
            let want = Self::entry(id.0, dir);
            if let Ok(e) = self.index.find_entry(h, |&v| v == want) {
                e.remove();
            }
        }
        self.slab[id.0 as usize] = Conn::default();
        self.free.push(id.0);
        conn
    }

    /// Examines at most `budget` slab entries from where the last sweep stopped and removes the
    /// expired connections, handing each to `on_expire`. Returns how many were removed.
    pub fn sweep(&mut self, now_ms: u32, budget: usize, mut on_expire: impl FnMut(&Conn)) -> usize {
        let mut removed = 0;
        for _ in 0..budget.min(self.slab.len()) {
            let pos = self.sweep_cursor;
            self.sweep_cursor = if pos + 1 == self.slab.len() {
                0
            } else {
                pos + 1
            };
            let c = self.slab[pos];
            if c.proto != 0 && c.is_expired(now_ms) {
                self.remove(ConnId(pos as u32));
                on_expire(&c);
                removed += 1;
            }
        }
        removed
    }

    /// Calls `visit` on every live connection; those for which it returns `false` are removed
    /// and handed to `on_remove`. Walks the whole slab: a control-plane operation, never a
    /// per-packet one. Returns how many were visited and how many removed.
    pub fn retain_mut(
        &mut self,
        mut visit: impl FnMut(&mut Conn) -> bool,
        mut on_remove: impl FnMut(&Conn),
    ) -> (usize, usize) {
        let (mut seen, mut removed) = (0, 0);
        for pos in 0..self.slab.len() {
            if self.slab[pos].proto == 0 {
                continue;
            }
            seen += 1;
            if !visit(&mut self.slab[pos]) {
                let c = self.remove(ConnId(pos as u32));
                on_remove(&c);
                removed += 1;
            }
        }
        (seen, removed)
    }

    /// The live connections, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slab.iter().filter(|c| c.proto != 0)
    }
}

/// A seeded multiply-xorshift hash of the packed tuple: a few instructions, good high bits
/// (hashbrown's tag) and low bits (its bucket index).
fn hash_tuple(seed: u64, t: &Tuple) -> u64 {
    let (a, b) = t.packed();
    let x = (a ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let y = (b ^ x.rotate_left(31)).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    y ^ (y >> 29)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(i: u32, expires: u32) -> Conn {
        Conn {
            cip: 0x0a00_0000 + i,
            vip: 0x0a00_0064,
            lip: 0xc0a8_0ac8,
            rip: 0xc0a8_0a0b,
            cport: 40000,
            vport: 80,
            lport: 1024 + i as u16,
            rport: 8080,
            rs_slot: 1,
            expires,
            svc_slot: 0,
            proto: 6,
            state: 1,
            flags: 0,
        }
    }

    #[test]
    fn both_directions_find_the_same_entry() {
        let mut t = ConnTable::new(8, 42);
        let c = conn(1, 1000);
        let id = t.insert(c).unwrap();
        assert_eq!(t.lookup(&c.tuple(Dir::Inbound)), Some((id, Dir::Inbound)));
        assert_eq!(t.lookup(&c.tuple(Dir::Outbound)), Some((id, Dir::Outbound)));
        assert_eq!(t.insert(c), Err(InsertError::Exists));
        assert_eq!(t.remove(id), c);
        assert_eq!(t.lookup(&c.tuple(Dir::Inbound)), None);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_refuses_without_disturbing_others() {
        let mut t = ConnTable::new(4, 1);
        for i in 0..4 {
            t.insert(conn(i, 1000)).unwrap();
        }
        assert_eq!(t.insert(conn(9, 1000)), Err(InsertError::Full));
        for i in 0..4 {
            assert!(t.lookup(&conn(i, 1000).tuple(Dir::Inbound)).is_some());
        }
    }

    #[test]
    fn sweep_removes_only_expired_and_is_bounded() {
        let mut t = ConnTable::new(16, 7);
        for i in 0..10 {
            t.insert(conn(i, if i % 2 == 0 { 100 } else { 5000 }))
                .unwrap();
        }
        let mut seen = Vec::new();
        // A budget of 4 looks at 4 entries only.
        assert!(t.sweep(200, 4, |c| seen.push(c.cip)) <= 4);
        let mut total = seen.len();
        for _ in 0..10 {
            total += t.sweep(200, 4, |c| seen.push(c.cip));
        }
        assert_eq!(total, 5);
        assert_eq!(t.len(), 5);
        assert!(seen.iter().all(|ip| (ip - 0x0a00_0000) % 2 == 0));
    }

    #[test]
    fn expiry_is_wrap_safe() {
        let c = conn(0, 10);
        assert!(c.is_expired(10));
        assert!(!c.is_expired(9));
        let c = conn(0, u32::MAX - 5);
        assert!(!c.is_expired(u32::MAX - 6));
        assert!(c.is_expired(3)); // wrapped past the deadline
    }

    #[test]
    fn churn_never_grows_the_index() {
        let mut t = ConnTable::new(1000, 3);
        let before = t.index.allocation_size();
        for round in 0..50u32 {
            let ids: Vec<_> = (0..1000)
                .map(|i| t.insert(conn(round * 1000 + i, 0)).unwrap())
                .collect();
            for id in ids {
                t.remove(id);
            }
        }
        assert_eq!(t.index.allocation_size(), before);
    }

    proptest::proptest! {
        #[test]
        fn table_matches_a_model(ops in proptest::collection::vec((0u32..64, proptest::bool::ANY), 1..400)) {
            let mut t = ConnTable::new(32, 9);
            let mut model = std::collections::HashMap::new();
            for (i, add) in ops {
                let c = conn(i, 0);
                if add {
                    match t.insert(c) {
                        Ok(id) => { model.insert(i, id); }
                        Err(InsertError::Exists) => proptest::prop_assert!(model.contains_key(&i)),
                        Err(InsertError::Full) => proptest::prop_assert_eq!(model.len(), 32),
                    }
                } else if let Some(id) = model.remove(&i) {
                    proptest::prop_assert_eq!(t.remove(id), c);
                }
                proptest::prop_assert_eq!(t.len(), model.len());
            }
            for (i, id) in &model {
                proptest::prop_assert_eq!(t.lookup(&conn(*i, 0).tuple(Dir::Outbound)), Some((*id, Dir::Outbound)));
            }
        }
    }
}
