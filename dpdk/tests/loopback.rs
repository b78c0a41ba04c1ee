//! EAL integration: a `net_ring` port loops TX back to RX; bytes written through `Frame` come
//! back intact and every mbuf returns to its pool. One test per file: EAL initialises once per
//! process.
#![cfg(feature = "eal")]

use dpvs_dpdk::Frame;
use dpvs_dpdk::{BURST, DpdkError, Eal, Mbuf, Mempool, Port, testing};

#[test]
fn net_ring_loopback_round_trips_bytes_and_frees_everything() {
    let (args, _dir) = testing::test_eal_args("loopback");
    let eal = Eal::init(&args).expect("EAL init");
    assert_eq!(
        Eal::init(&args).unwrap_err(),
        DpdkError::AlreadyInitialized,
        "second init must fail"
    );
    assert_eq!(eal.main_lcore(), 0);
    assert_eq!(eal.worker_lcores(), vec![1]);
    assert!(eal.tsc_hz() > 0);
    assert_eq!(dpvs_dpdk::lcore_id(), Some(0));

    let pool = Mempool::create(&eal, "loop_pool", 1023, 32, None).expect("pool");
    let idle = pool.in_use();
    assert_eq!(idle, 0);

    let mut port = Port::attach(&eal, "net_ring0").expect("attach net_ring0");
    assert_eq!(port.name(), "net_ring0");
    let info = port.info().expect("info");
    assert_eq!(info.driver_name, "net_ring");
    assert!(
        Port::attach(&eal, "net_ring0").is_err(),
        "a port is attached once"
    );
    let cfg = port.configure(1, 1, 256, 256, pool).expect("configure");
    assert_eq!(cfg.rss_hf, 0, "one queue: no RSS");
    let mut rxq = port.rx_queue(0).expect("rxq");
    let mut txq = port.tx_queue(0).expect("txq");
    assert!(port.rx_queue(0).is_err(), "a queue is handed out once");
    assert!(port.tx_queue(1).is_err(), "no such queue");
    port.start().expect("start");
    let _ = port.mac();
    let _ = port.link_up();

    // Build a burst of frames of different sizes through the Frame trait.
    let mut tx: Vec<Mbuf> = Vec::with_capacity(BURST);
    for i in 0..8u8 {
        let mut m = pool.alloc().expect("alloc");
        assert!(m.is_empty());
        assert_eq!(m.headroom(), 128);
        let len = 60 + usize::from(i) * 10;
        assert!(m.set_len(len));
        for (j, b) in m.data_mut().iter_mut().enumerate() {
            *b = i.wrapping_mul(31).wrapping_add(j as u8);
        }
        // Exercise prepend/adj/trim on the way: net effect keeps the payload.
        m.prepend(14).expect("headroom")[..14].fill(0xee);
        assert!(m.adj(14));
        assert!(m.set_len(len + 4));
        assert!(m.trim(4));
        assert!(!m.adj(len + 1));
        assert!(m.prepend(129).is_none());
        assert_eq!(m.rss_hash(), None);
        tx.push(m);
    }
    let expected: Vec<Vec<u8>> = tx.iter().map(|m| m.data().to_vec()).collect();
    assert_eq!(pool.in_use(), 8);

    assert_eq!(txq.tx_burst(&mut tx), 8);
    assert!(tx.is_empty());

    let mut rx: Vec<Mbuf> = Vec::with_capacity(BURST);
    while rx.len() < 8 {
        rxq.rx_burst(&mut rx);
    }
    assert_eq!(rx.capacity(), BURST, "rx_burst never grows the Vec");
    let got: Vec<Vec<u8>> = rx.iter().map(|m| m.data().to_vec()).collect();
    assert_eq!(got, expected);
    assert!(rx.iter().all(|m| !m.is_chained()));

    // A full Vec receives nothing.
    let mut full: Vec<Mbuf> = Vec::new();
    assert_eq!(rxq.rx_burst(&mut full), 0);

    let stats = port.stats().expect("stats");
    assert_eq!(stats.opackets, 8);
    assert_eq!(stats.ipackets, 8);

    drop(rx);
    assert_eq!(pool.in_use(), idle, "all mbufs back in the pool");

    assert!(port.stop().is_err(), "stop refused while queues are out");
    drop(rxq);
    drop(txq);
    port.stop().expect("stop");
    drop(port);
    // Detached on drop: the same device string attaches again.
    let port = Port::attach(&eal, "net_ring0").expect("re-attach");
    drop(port);
    assert_eq!(pool.in_use(), idle);
    eal.shutdown().expect("clean EAL shutdown: nothing leaked");
    assert!(pool.alloc().is_none(), "no allocation once the EAL is gone");
}
