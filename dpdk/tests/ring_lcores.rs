//! EAL integration: mbufs cross from the main lcore to a worker lcore through an SPSC ring; the
//! worker checks their order and transmits them on a `net_null` port whose TX queue was moved
//! to it. One test per file: EAL initialises once per process.
#![cfg(feature = "eal")]

use dpvs_dpdk::Frame;
use dpvs_dpdk::{BURST, Eal, Mbuf, Mempool, Port, Ring, launch, lcore_id, testing};

const TOTAL: u32 = 20_000;

#[test]
fn ring_moves_mbufs_to_a_worker_lcore() {
    let (args, _dir) = testing::test_eal_args("ring-lcores");
    let eal = Eal::init(&args).expect("EAL init");
    let worker = eal.worker_lcores()[0];
    let pool = Mempool::create(&eal, "ring_pool", 2047, 64, None).expect("pool");

    let mut port = Port::attach(&eal, "net_null0").expect("attach net_null0");
    assert_eq!(port.info().unwrap().driver_name, "net_null");
    port.configure(1, 1, 512, 512, pool).expect("configure");
    let mut txq = port.tx_queue(0).expect("txq");
    port.start().expect("start");

    let (mut prod, mut cons) = Ring::create(&eal, "to_worker", 256).expect("ring");

    let job = launch(&eal, worker, move || {
        let Some(me) = lcore_id() else {
            return -100;
        };
        if me != worker {
            return -101;
        }
        let mut buf: Vec<Mbuf> = Vec::with_capacity(BURST);
        let mut next = 0u32;
        while next < TOTAL {
            cons.dequeue_burst(&mut buf, BURST);
            for m in &buf {
                let seq = u32::from_be_bytes(m.data()[..4].try_into().unwrap());
                if seq != next {
                    return -1;
                }
                next += 1;
            }
            while !buf.is_empty() {
                txq.tx_burst(&mut buf);
            }
        }
        next as i32
    })
    .expect("launch");

    let mut out: Vec<Mbuf> = Vec::with_capacity(BURST);
    let mut seq = 0u32;
    while seq < TOTAL || !out.is_empty() {
        while out.len() < BURST && seq < TOTAL {
            let Some(mut m) = pool.alloc() else { break };
            assert!(m.set_len(64));
            m.data_mut()[..4].copy_from_slice(&seq.to_be_bytes());
            out.push(m);
            seq += 1;
        }
        prod.enqueue_burst(&mut out);
    }
    assert_eq!(job.wait(), Ok(TOTAL as i32));

    drop(prod);
    port.stop().expect("stop (the worker dropped the TX queue)");
    assert_eq!(port.stats().unwrap().opackets, u64::from(TOTAL));
    drop(port);
    assert_eq!(pool.in_use(), 0);
    eal.shutdown().expect("clean EAL shutdown: nothing leaked");
}
