//! The per-worker connection table.
//!
//! Connections live in a slab preallocated at start-up. Each is indexed under both of its
//! directions (client→VIP and real server→local address), so one probe finds the entry
//! whichever way a packet travels. The index is a chained hash: an array of bucket heads, and
//! in each slab entry one "next" link per direction, so a tuple's chain runs through the
//! connections themselves. That costs 8 bytes per connection plus 4 per bucket, has no
//! tombstones (a removal unlinks, so there is never a rehash), and a hit costs two memory
//! accesses: the bucket head, then the entry, where the key is compared in place.
//!
//! Inserting never allocates: the slab and the buckets are sized for the configured capacity,
//! and a full table refuses new connections (counted by the caller) without touching the
//! established ones. Both arrays ask for transparent huge pages, so a table of millions of
//! entries does not add a TLB miss to every cache miss. Expiry is a bounded incremental
//! sweep over the slab, so no per-connection timer nodes are needed.
//!
//! (Over 500 lines with its tests, which stay here: they check the chain and slab invariants
//! through private fields that no other module should see.)

use std::net::Ipv4Addr;

use dpvs_dpdk::hw::{advise_huge_pages, prefetch};

use crate::engine::tcp_state::TcpState;
use crate::packet::ipv4::IpProto;

/// Which way a packet travels on its connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dir {
    /// Client → VIP, forwarded to the real server.
    Inbound,
    /// Real server → local address (or the client, in NAT mode), forwarded back to the client.
    Outbound,
}

impl Dir {
    /// The other way along the connection.
    pub fn reverse(self) -> Dir {
        match self {
            Dir::Inbound => Dir::Outbound,
            Dir::Outbound => Dir::Inbound,
        }
    }
}

/// The 5-tuple a packet carries, as seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub proto: IpProto,
    pub src: Ipv4Addr,
    pub sport: u16,
    pub dst: Ipv4Addr,
    pub dport: u16,
}

/// One tracked connection: both directions in 40 bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Conn {
    /// Client address and port (source of inbound packets).
    pub cip: u32,
    /// VIP (destination of inbound packets).
    pub vip: u32,
    /// Local address (source the real server sees); equals `cip` in NAT mode.
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
    /// IP protocol; [`FREE`] marks a free slab entry.
    pub proto: IpProto,
    /// TCP state ([`TcpState::None`] for UDP).
    pub state: TcpState,
    pub flags: ConnFlags,
}

bitflags::bitflags! {
    /// The forwarding mode of a connection (FullNAT when none is set) and whether it was cut.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
    pub struct ConnFlags: u8 {
        /// Its real server or service was deleted (the connection was cut): the next segment
        /// in either direction is answered by resetting both ends, and the entry goes.
        const DEAD = 1;
        /// NAT mode: `lip`/`lport` are the client's own endpoint, not a port taken from a
        /// local address's pool.
        const NAT = 2;
        /// Direct routing: packets go to the real server unchanged but for the destination
        /// MAC. `lip`/`lport` are unused.
        const DR = 4;
        /// IP-in-IP tunnel: packets go to the real server inside an outer header. `lip`/`lport`
        /// are unused.
        const TUN = 8;
        /// The modes whose replies bypass the balancer: such a connection is indexed under its
        /// inbound tuple only, and its TCP state follows the client's segments alone.
        const DIRECT = Self::DR.bits() | Self::TUN.bits();
        /// Its service is persistent: the expiry sweep renews the client's template while the
        /// connection lives.
        const PERSISTENT = 16;
    }
}

/// The protocol of a free slab entry (no IP packet has it, as no connection is made of one).
pub const FREE: IpProto = IpProto(0);

impl Conn {
    /// Whether the entry holds a connection (a free slab entry does not).
    pub fn is_live(&self) -> bool {
        self.proto != FREE
    }

    /// Whether it was cut (see [`ConnFlags::DEAD`]).
    pub fn is_dead(&self) -> bool {
        self.flags.contains(ConnFlags::DEAD)
    }

    /// Whether replies bypass the balancer (DR, TUN), so only inbound packets are seen.
    pub fn is_direct(&self) -> bool {
        self.flags.intersects(ConnFlags::DIRECT)
    }

    /// Whether `lport` was taken from the pool of local address `lip` (FullNAT only).
    pub fn holds_local_port(&self) -> bool {
        !self.flags.intersects(ConnFlags::NAT | ConnFlags::DIRECT)
    }

    /// The directions the table indexes the connection under.
    fn indexed(&self) -> &'static [Dir] {
        if self.is_direct() {
            &[Dir::Inbound]
        } else {
            &[Dir::Inbound, Dir::Outbound]
        }
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

    /// Whether packets with tuple `t` travelling in `dir` belong to this connection: the
    /// fields compared in place, without building a [`Tuple`].
    #[inline]
    fn carries(&self, dir: Dir, t: &Tuple) -> bool {
        let (src, sport, dst, dport) = match dir {
            Dir::Inbound => (self.cip, self.cport, self.vip, self.vport),
            Dir::Outbound => (self.rip, self.rport, self.lip, self.lport),
        };
        src == t.src.to_bits()
            && dst == t.dst.to_bits()
            && sport == t.sport
            && dport == t.dport
            && self.proto == t.proto
    }

    /// Whether the connection's deadline has passed at `now_ms` (wrap-safe for deadlines
    /// within 24 days, far above any timeout).
    pub fn is_expired(&self, now_ms: u32) -> bool {
        (now_ms.wrapping_sub(self.expires) as i32) >= 0
    }
}

// The table's memory budget depends on it (see the module comment).
const _: () = assert!(std::mem::size_of::<Conn>() == 40);

/// A slab entry: a connection and the links of the two chains it hangs in.
#[derive(Clone, Copy, Debug, Default)]
struct Slot {
    conn: Conn,
    /// The next index entry of the chain each of its tuples hangs in, by [`Dir`]. A free slot
    /// keeps the next free slot in `next[0]`.
    next: [u32; 2],
}

const _: () = assert!(std::mem::size_of::<Slot>() == 48);

/// End of a chain (and of the free list).
const NIL: u32 = u32::MAX;

/// Handle to a connection in the table, valid until the connection is removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnId(u32);

/// The bucket a tuple hashes to, from [`ConnTable::bucket`]: lets a caller hash a whole burst
/// and prefetch before it looks anything up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket(u32);

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
    slots: Vec<Slot>,
    /// Chain heads: index entries (slot << 1 | direction), [`NIL`] for an empty bucket.
    heads: Vec<u32>,
    free: u32,
    len: usize,
    seed: u64,
    sweep_cursor: usize,
}

/// A vector of `n` copies of `v`, its memory advised to huge pages before it is first written.
fn huge_vec<T: Clone>(n: usize, v: T) -> Vec<T> {
    let mut vec = Vec::with_capacity(n);
    advise_huge_pages(vec.spare_capacity_mut());
    vec.resize(n, v);
    vec
}

impl ConnTable {
    /// A table for at most `capacity` connections; all memory is taken (and touched) here.
    /// There are twice as many buckets as connections, so a full table holds one tuple per
    /// bucket on average.
    pub fn new(capacity: usize, seed: u64) -> ConnTable {
        let capacity = capacity.clamp(1, (u32::MAX >> 2) as usize);
        let mut slots = huge_vec(capacity, Slot::default());
        for (i, s) in slots.iter_mut().enumerate() {
            s.next[0] = if i + 1 == capacity { NIL } else { i as u32 + 1 };
        }
        ConnTable {
            slots,
            heads: huge_vec(2 * capacity, NIL),
            free: 0,
            len: 0,
            seed,
            sweep_cursor: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bucket of tuple `t`.
    #[inline]
    pub fn bucket(&self, t: &Tuple) -> Bucket {
        // Multiply-shift maps the hash's 32 high bits onto any bucket count, so the bucket
        // array need not round up to a power of two (memory per connection stays constant).
        let h = hash_tuple(self.seed, t) >> 32;
        Bucket(((h * self.heads.len() as u64) >> 32) as u32)
    }

    /// Starts loading bucket `b`'s head into the cache (first step of a burst lookup).
    #[inline]
    pub fn prefetch_bucket(&self, b: Bucket) {
        prefetch(&self.heads[b.0 as usize]);
    }

    /// Starts loading the first entry of bucket `b` into the cache (second step, once the
    /// head has arrived).
    #[inline]
    pub fn prefetch_entry(&self, b: Bucket) {
        if let Some(s) = self.slots.get((self.heads[b.0 as usize] >> 1) as usize) {
            prefetch(s);
        }
    }

    /// Index entry of slot `pos` in direction `dir`.
    fn entry(pos: u32, dir: Dir) -> u32 {
        (pos << 1) | u32::from(dir == Dir::Outbound)
    }

    #[inline]
    fn decode(e: u32) -> (u32, Dir) {
        let dir = if e & 1 == 1 {
            Dir::Outbound
        } else {
            Dir::Inbound
        };
        (e >> 1, dir)
    }

    /// Finds the connection a packet with tuple `t` belongs to, and the packet's direction.
    #[inline]
    pub fn lookup(&self, t: &Tuple) -> Option<(ConnId, Dir)> {
        self.lookup_in(self.bucket(t), t)
    }

    /// [`Self::lookup`] in the bucket [`Self::bucket`] gave for `t`.
    #[inline]
    pub fn lookup_in(&self, b: Bucket, t: &Tuple) -> Option<(ConnId, Dir)> {
        let mut e = self.heads[b.0 as usize];
        while e != NIL {
            let (pos, dir) = Self::decode(e);
            let s = &self.slots[pos as usize];
            if s.conn.carries(dir, t) {
                return Some((ConnId(pos), dir));
            }
            e = s.next[dir as usize];
        }
        None
    }

    /// Inserts `conn` under both of its tuples (under its inbound tuple only when replies
    /// bypass the balancer).
    pub fn insert(&mut self, conn: Conn) -> Result<ConnId, InsertError> {
        let dirs = conn.indexed();
        // Only the indexed directions are hashed: a direct connection's outbound tuple is
        // never looked up.
        let keys: [Option<(Bucket, Tuple)>; 2] = std::array::from_fn(|i| {
            let t = conn.tuple(*dirs.get(i)?);
            Some((self.bucket(&t), t))
        });
        let taken = |(b, t): &(Bucket, Tuple)| self.lookup_in(*b, t).is_some();
        if keys.iter().flatten().any(taken) {
            return Err(InsertError::Exists);
        }
        let pos = self.free;
        let Some(slot) = self.slots.get_mut(pos as usize) else {
            return Err(InsertError::Full);
        };
        self.free = slot.next[0];
        slot.conn = conn;
        for (&dir, (b, _)) in dirs.iter().zip(keys.into_iter().flatten()) {
            let head = &mut self.heads[b.0 as usize];
            self.slots[pos as usize].next[dir as usize] = *head;
            *head = Self::entry(pos, dir);
        }
        self.len += 1;
        Ok(ConnId(pos))
    }

    pub fn get(&self, id: ConnId) -> &Conn {
        &self.slots[id.0 as usize].conn
    }

    pub fn get_mut(&mut self, id: ConnId) -> &mut Conn {
        &mut self.slots[id.0 as usize].conn
    }

    /// Takes index entry `want` out of the chain of bucket `b`.
    fn unlink(&mut self, b: Bucket, want: u32) {
        let mut link = &mut self.heads[b.0 as usize];
        let mut prev: Option<(usize, usize)> = None;
        let mut e = *link;
        while e != NIL && e != want {
            let (pos, dir) = Self::decode(e);
            prev = Some((pos as usize, dir as usize));
            e = self.slots[pos as usize].next[dir as usize];
        }
        if e == NIL {
            return;
        }
        let (pos, dir) = Self::decode(e);
        let after = self.slots[pos as usize].next[dir as usize];
        if let Some((p, d)) = prev {
            link = &mut self.slots[p].next[d];
        }
        *link = after;
    }

    /// Removes a connection and returns it.
    pub fn remove(&mut self, id: ConnId) -> Conn {
        let conn = self.slots[id.0 as usize].conn;
        for &dir in conn.indexed() {
            let b = self.bucket(&conn.tuple(dir));
            self.unlink(b, Self::entry(id.0, dir));
        }
        self.slots[id.0 as usize] = Slot {
            conn: Conn::default(),
            next: [self.free, NIL],
        };
        self.free = id.0;
        self.len -= 1;
        conn
    }

    /// Examines at most `budget` slab entries from where the last sweep stopped and removes the
    /// expired connections, handing each to `on_expire`; live connections flagged
    /// [`ConnFlags::PERSISTENT`] are shown to `on_persistent`. Returns how many were removed.
    pub fn sweep(
        &mut self,
        now_ms: u32,
        budget: usize,
        mut on_expire: impl FnMut(&Conn),
        mut on_persistent: impl FnMut(&Conn),
    ) -> usize {
        let mut removed = 0;
        for _ in 0..budget.min(self.slots.len()) {
            let pos = self.sweep_cursor;
            self.sweep_cursor = if pos + 1 == self.slots.len() {
                0
            } else {
                pos + 1
            };
            let c = self.slots[pos].conn;
            if c.is_live() && c.is_expired(now_ms) {
                self.remove(ConnId(pos as u32));
                on_expire(&c);
                removed += 1;
            } else if c.flags.contains(ConnFlags::PERSISTENT) && c.is_live() {
                on_persistent(&c);
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
        for pos in 0..self.slots.len() {
            if !self.slots[pos].conn.is_live() {
                continue;
            }
            seen += 1;
            if !visit(&mut self.slots[pos].conn) {
                let c = self.remove(ConnId(pos as u32));
                on_remove(&c);
                removed += 1;
            }
        }
        (seen, removed)
    }

    /// The live connections, in slab order.
    pub fn iter(&self) -> impl Iterator<Item = &Conn> {
        self.slots.iter().map(|s| &s.conn).filter(|c| c.is_live())
    }
}

/// A seeded multiply-xorshift hash of the tuple packed in two words: a few instructions, with
/// well mixed high bits (the bucket index). The words are taken in network byte order, as a
/// packet carries them, so that hashing a tuple just parsed swaps no byte.
#[inline]
fn hash_tuple(seed: u64, t: &Tuple) -> u64 {
    let a = (u64::from(t.src.to_bits().to_be()) << 32) | u64::from(t.dst.to_bits().to_be());
    let b = (u64::from(t.sport.to_be()) << 32)
        | (u64::from(t.dport.to_be()) << 16)
        | u64::from(t.proto.0);
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
            proto: IpProto::TCP,
            state: TcpState::Established,
            flags: ConnFlags::empty(),
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
    fn a_direct_connection_is_indexed_inbound_only() {
        let mut t = ConnTable::new(8, 5);
        let mut dr = conn(1, 1000);
        (dr.lip, dr.lport, dr.flags) = (0, 0, ConnFlags::DR);
        let id = t.insert(dr).unwrap();
        assert_eq!(t.lookup(&dr.tuple(Dir::Inbound)), Some((id, Dir::Inbound)));
        assert_eq!(t.lookup(&dr.tuple(Dir::Outbound)), None);
        // Another client's connection to the same real server does not clash on the
        // unused reply tuple.
        let mut other = conn(2, 1000);
        (other.lip, other.lport, other.flags) = (0, 0, ConnFlags::TUN);
        let id2 = t.insert(other).unwrap();
        assert_eq!(t.remove(id), dr);
        assert_eq!(
            t.lookup(&other.tuple(Dir::Inbound)),
            Some((id2, Dir::Inbound))
        );
        t.remove(id2);
        assert!(t.is_empty());
        assert!(t.heads.iter().all(|h| *h == NIL));
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
        assert!(t.sweep(200, 4, |c| seen.push(c.cip), |_| {}) <= 4);
        let mut total = seen.len();
        for _ in 0..10 {
            total += t.sweep(200, 4, |c| seen.push(c.cip), |_| {});
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
    fn churn_keeps_every_chain_consistent() {
        // A tiny bucket array (4 connections → 8 buckets) makes shared chains common, so
        // removals unlink from the middle and the end of chains, not just heads.
        let mut t = ConnTable::new(4, 3);
        for round in 0..500u32 {
            let ids: Vec<_> = (0..4)
                .map(|i| t.insert(conn(round * 7 + i, 0)).unwrap())
                .collect();
            for (k, id) in ids
                .iter()
                .enumerate()
                .rev()
                .filter(|(k, _)| k % 2 == (round % 2) as usize)
            {
                assert_eq!(t.remove(*id), conn(round * 7 + k as u32, 0));
            }
            for (k, id) in ids.iter().enumerate() {
                let c = conn(round * 7 + k as u32, 0);
                let live = k % 2 != (round % 2) as usize;
                assert_eq!(t.lookup(&c.tuple(Dir::Outbound)).is_some(), live);
                if live {
                    assert_eq!(t.lookup(&c.tuple(Dir::Inbound)), Some((*id, Dir::Inbound)));
                    t.remove(*id);
                }
            }
            assert!(t.is_empty());
        }
        assert_eq!((t.slots.capacity(), t.heads.capacity()), (4, 8));
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
