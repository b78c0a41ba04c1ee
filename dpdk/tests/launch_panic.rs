//! EAL integration: a panic inside a launched closure is reported by `wait()` as an error
//! instead of aborting the process, and the lcore can be launched again. One test per file:
//! EAL initialises once per process.
#![cfg(feature = "eal")]

use dpvs_dpdk::{Eal, Mempool, launch, testing};

#[test]
fn panicking_worker_is_reported_not_fatal() {
    let (args, _dir) = testing::test_eal_args("launch-panic");
    let eal = Eal::init(&args).expect("EAL init");
    let worker = eal.worker_lcores()[0];

    let job = launch(&eal, worker, || panic!("boom in the worker")).expect("launch");
    let err = job.wait().expect_err("a panic is an error");
    assert!(err.contains("boom in the worker"), "{err}");
    assert!(err.contains(&format!("lcore {worker}")), "{err}");

    let n = String::from("owned");
    let job = launch(&eal, worker, move || {
        std::panic::panic_any(format!("{n} payload"))
    })
    .expect("relaunch after a panic");
    assert!(job.wait().unwrap_err().contains("owned payload"));

    let job = launch(&eal, worker, || 7).expect("launch");
    assert_eq!(job.lcore(), worker);
    assert_eq!(job.wait(), Ok(7));

    assert!(launch(&eal, eal.main_lcore(), || 0).is_err(), "main lcore");
    assert!(launch(&eal, 100, || 0).is_err(), "disabled lcore");

    // An mbuf still out keeps the EAL memory mapped: cleanup is refused, not run under it.
    let pool = Mempool::create(&eal, "panic_pool", 63, 0, None).expect("pool");
    let held = pool.alloc().expect("alloc");
    let err = eal.shutdown().expect_err("cleanup must be refused");
    assert!(err.to_string().contains("1 mbufs"), "{err}");
    drop(held);
}
