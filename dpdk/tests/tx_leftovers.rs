//! EAL integration: what a TX queue or a ring refuses stays owned by the caller, in order; the
//! rest is freed exactly once, and the pool ends where it started. One test per file: EAL
//! initialises once per process.
#![cfg(feature = "eal")]

use dpvs_dpdk::Frame;
use dpvs_dpdk::{BURST, Eal, Mbuf, Mempool, Port, Ring, testing};

const N: u32 = 1500;

fn tagged(pool: &Mempool, seq: u32) -> Mbuf {
    let mut m = pool.alloc().expect("alloc");
    assert!(m.set_len(60));
    m.data_mut()[..4].copy_from_slice(&seq.to_be_bytes());
    m
}

fn tag(m: &Mbuf) -> u32 {
    u32::from_be_bytes(m.data()[..4].try_into().unwrap())
}

#[test]
fn refused_packets_stay_with_the_caller_and_nothing_leaks() {
    let (args, _dir) = testing::test_eal_args("tx-leftovers");
    let eal = Eal::init(&args).expect("EAL init");
    let pool = Mempool::create(&eal, "left_pool", 4095, 0, None).expect("pool");

    // net_ring's loopback ring holds 1023 packets and nobody receives: the queue fills up.
    let mut port = Port::attach(&eal, "net_ring0").expect("attach net_ring0");
    port.configure(1, 1, 1024, 1024, pool).expect("configure");
    let mut txq = port.tx_queue(0).expect("txq");
    let mut rxq = port.rx_queue(0).expect("rxq");
    port.start().expect("start");

    let mut pkts: Vec<Mbuf> = (0..N).map(|i| tagged(pool, i)).collect();
    let mut sent = 0;
    loop {
        let n = txq.tx_burst(&mut pkts);
        sent += n;
        if n == 0 {
            break;
        }
    }
    assert!(!pkts.is_empty(), "the queue refused some packets");
    assert_eq!(sent + pkts.len(), N as usize);
    // The unsent are the tail, in order.
    for (i, m) in pkts.iter().enumerate() {
        assert_eq!(tag(m), (sent + i) as u32);
    }
    assert_eq!(pool.in_use(), N);
    drop(pkts);
    assert_eq!(pool.in_use(), sent as u32, "unsent ones freed by drop");

    let mut rx: Vec<Mbuf> = Vec::with_capacity(BURST);
    let mut got = 0;
    loop {
        let n = rxq.rx_burst(&mut rx);
        if n == 0 {
            break;
        }
        for m in rx.drain(..) {
            assert_eq!(tag(&m), got as u32);
            got += 1;
        }
    }
    assert_eq!(got, sent);
    assert_eq!(pool.in_use(), 0);

    // The same contract for a ring; what is left in it is freed with the ring.
    let (mut prod, cons) = Ring::create(&eal, "leftover_ring", 16).expect("ring");
    let mut pkts: Vec<Mbuf> = (0..20).map(|i| tagged(pool, i)).collect();
    assert_eq!(prod.enqueue_burst(&mut pkts), 16);
    assert_eq!(pkts.len(), 4);
    assert_eq!(tag(&pkts[0]), 16);
    assert_eq!(prod.enqueue_burst(&mut pkts), 0);
    assert_eq!(cons.len(), 16);
    drop(pkts);
    drop(prod);
    assert_eq!(pool.in_use(), 16);
    drop(cons);
    assert_eq!(pool.in_use(), 0, "the ring freed what it held");

    drop((txq, rxq));
    port.stop().expect("stop");
    drop(port);
    assert_eq!(pool.in_use(), 0);
    eal.shutdown().expect("clean EAL shutdown: nothing leaked");
}
