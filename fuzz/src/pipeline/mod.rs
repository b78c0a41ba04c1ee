//! The `pipeline` target: the whole worker (`Worker::process`, `process_burst`,
//! `housekeeping`, commands) driven through testkit's [`Rig`] over a lab with services in every
//! forwarding mode and scheduler family ([`lab`]), by a sequence of steps decoded from the
//! input ([`input`]): frames from the clients' port (0) and the real servers' (1), alone or in
//! bursts, raw or built from templates ([`frames`]), interleaved with clock advances,
//! housekeeping, the control plane publishing what the worker learnt, route changes, edits of
//! real servers and services, cuts, and a full ring to the kernel twin. After every step the
//! invariants in [`invariants`] are checked; at the end the worker is drained and must hold
//! nothing, and no persistence template outlives its timeout.

pub mod frames;
pub mod input;
pub mod invariants;
pub mod lab;
pub mod seeds;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::bounded;
use dpvs_core::engine::conn::Tuple;
use dpvs_core::engine::neigh::{MAX_TRIES, RETRY_MS};
use dpvs_core::engine::worker::{Command, Event};
use dpvs_core::packet::Frame;
use dpvs_testkit::rig::Rig;

use input::{Input, Step};
use invariants::{Tally, Tracked};

/// Time an input may move the clock by in all. Connection deadlines are 32-bit wrapping
/// milliseconds, ordered within 2^31 ms of each other (see `worker::MAX_TIMEOUT_S`); the
/// daemon sweeps far more often than that, so the harness stays well inside it too.
const MAX_CLOCK_MS: u64 = 1 << 30;

/// Runs one input and checks the invariants.
pub fn run(input: &Input) {
    run_with(input, None);
}

/// Frames an input made the worker receive and send, in order (for the `parse` seeds).
#[derive(Debug, Default)]
pub struct Recording {
    pub received: Vec<Vec<u8>>,
    pub sent: Vec<Vec<u8>>,
}

/// [`run`], recording the frames.
pub fn run_recording(input: &Input) -> Recording {
    let mut r = Recording::default();
    run_with(input, Some(&mut r));
    r
}

fn run_with(input: &Input, record: Option<&mut Recording>) {
    let live = {
        let mut h = Harness::new(record);
        for step in &input.0 {
            h.step(step);
        }
        h.drain();
        Arc::clone(&h.rig.live)
    };
    // No frame leaked or duplicated: once the worker and its outputs are gone, none is alive.
    assert_eq!(live.load(Ordering::Relaxed), 0, "frames leaked");
}

/// What a step's checks compare with, taken before it.
struct Before {
    tally: Tally,
    persisted: invariants::Persisted,
    tuples: HashSet<Tuple>,
}

impl Before {
    fn take(rig: &Rig<Tracked>) -> Before {
        let persisted = invariants::persisted(rig);
        // Only the persistence check needs the tuples.
        let tuples = if persisted.is_empty() {
            HashSet::new()
        } else {
            invariants::tuples(rig)
        };
        Before {
            tally: Tally::take(rig),
            persisted,
            tuples,
        }
    }
}

struct Harness<'a> {
    rig: Rig<Tracked>,
    /// Connections of each real server after the last step.
    rs_counts: invariants::RsCounts,
    svc_slots: Vec<u32>,
    rs_slots: Vec<u32>,
    clock_ms: u64,
    record: Option<&'a mut Recording>,
}

impl<'a> Harness<'a> {
    fn new(record: Option<&'a mut Recording>) -> Harness<'a> {
        let state = lab::state();
        let (svc_slots, rs_slots) = lab::slots(&state);
        let rig = Rig::new(state, lab::LIMITS);
        Harness {
            rs_counts: invariants::rs_counts(&rig),
            rig,
            svc_slots,
            rs_slots,
            clock_ms: 0,
            record,
        }
    }

    fn record(&mut self, received: &[Vec<u8>], sent: &[(u16, Tracked)]) {
        if let Some(r) = self.record.as_deref_mut() {
            r.received.extend_from_slice(received);
            r.sent.extend(sent.iter().map(|(_, f)| f.data().to_vec()));
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Frame(f) => {
                let frame = frames::build(f, self.rig.worker.conns());
                self.deliver(frame.0, &[frame.1], false);
            }
            Step::Burst { port, frames } => {
                let conns = self.rig.worker.conns();
                let bytes: Vec<Vec<u8>> =
                    frames.iter().map(|f| frames::build(f, conns).1).collect();
                self.deliver(u16::from(*port % 3), &bytes, true);
            }
            Step::Advance(ms) => self.advance(u64::from(*ms)),
            Step::Housekeeping => self.timers("housekeeping"),
            Step::ControlTick => self.control_tick(),
            Step::Cut { service, index } => self.cut(*service, *index),
            Step::Route(i) => self.route(*i),
            Step::Edit { target, a, b } => {
                lab::edit(&mut self.rig.state, *target, *a, *b);
                self.publish("edit");
            }
            Step::KernelFull(full) => self.rig.out.kernel_full = *full,
        }
    }

    /// Hands frames received on `port` to the worker, one alone or as a burst, and checks
    /// what came out and what was counted.
    fn deliver(&mut self, port: u16, frames: &[Vec<u8>], burst: bool) {
        let snap = &self.rig.snap;
        let consumed = frames
            .iter()
            .filter(|b| invariants::consumed_by_learning(snap, port, b))
            .count();
        let inputs_valid = frames.iter().all(|b| invariants::l4_checksum_valid(b));
        let before = Before::take(&self.rig);
        let out = if burst {
            self.rig.send_burst(port, frames)
        } else {
            self.rig.send(port, &frames[0])
        };
        let after = Tally::take(&self.rig);
        let what = if burst { "burst" } else { "frame" };
        invariants::every_frame_sent_parked_or_counted(before.tally, after, consumed, what);
        invariants::emitted_frames_are_well_formed(&self.rig.snap, &out, inputs_valid, what);
        self.record(frames, &out);
        drop(out);
        self.after_step(before, after, what);
    }

    /// The checks after any step once its frames are judged: what went to the kernel twin,
    /// the connection accounting, the connection limits, the templates.
    fn after_step(&mut self, before: Before, after: Tally, what: &str) {
        let kernel = std::mem::take(&mut self.rig.out.kernel);
        invariants::kernel_frames_counted(&self.rig.snap, before.tally, after, &kernel, what);
        drop(kernel);
        invariants::conn_accounting_consistent(&self.rig, what);
        invariants::limits_hold(&self.rig, &self.rs_counts, what);
        self.rs_counts = invariants::rs_counts(&self.rig);
        invariants::templates_point_to_their_services(&self.rig, what);
        invariants::persistence_holds(&self.rig, &before.persisted, &before.tuples, what);
    }

    fn advance(&mut self, ms: u64) {
        let ms = ms.min(MAX_CLOCK_MS - self.clock_ms);
        self.clock_ms += ms;
        self.rig.advance(ms);
    }

    /// Housekeeping: released and expired parked frames, ARP retries, expired connections.
    fn timers(&mut self, what: &str) {
        self.checked(what, Rig::housekeeping);
    }

    /// Runs a step that receives no frame (timers, a publication) and checks what it sent,
    /// what it counted and the connection accounting.
    fn checked(&mut self, what: &str, step: fn(&mut Rig<Tracked>) -> Vec<(u16, Tracked)>) {
        let before = Before::take(&self.rig);
        let out = step(&mut self.rig);
        let after = Tally::take(&self.rig);
        invariants::every_frame_sent_parked_or_counted(before.tally, after, 0, what);
        // Parked frames may have come in with bad checksums: only the rest is checked.
        invariants::emitted_frames_are_well_formed(&self.rig.snap, &out, false, what);
        self.record(&[], &out);
        drop(out);
        self.after_step(before, after, what);
    }

    /// The control plane's event thread: takes the neighbours the worker learnt from ARP and
    /// publishes the new table (which releases the packets parked for them).
    fn control_tick(&mut self) {
        for e in self.rig.events() {
            let Event::NeighLearned { ip, mac, port } = e;
            self.rig.state.neigh_learn(ip, mac, port);
        }
        self.publish("neighbours");
    }

    /// The control plane publishes its state (snapshot and neighbours); the worker sees it at
    /// once, as it would at its next burst.
    fn publish(&mut self, what: &str) {
        self.checked(what, Rig::republish);
    }

    /// Adds or removes one of the lab's optional routes, and publishes.
    fn route(&mut self, i: u8) {
        let (prefix, len, port, via) = lab::ROUTES[usize::from(i) % lab::ROUTES.len()];
        let state = &mut self.rig.state;
        if state.route_del(prefix.into(), len).is_err() {
            state
                .route_add(prefix.into(), len, port, Some(via.into()), None)
                .expect("a lab route");
        }
        self.publish("route");
    }

    /// Cuts the connections of a service or real server as a deletion does (without deleting
    /// it: new connections to it go on, which the accounting must survive too).
    fn cut(&mut self, service: bool, index: u8) {
        let (reply, rx) = bounded(1);
        let cmd = if service {
            let slot = self.svc_slots[usize::from(index) % self.svc_slots.len()];
            Command::CutService {
                svc_slot: slot,
                reply,
            }
        } else {
            let slot = self.rs_slots[usize::from(index) % self.rs_slots.len()];
            Command::CutRs {
                rs_slot: slot,
                reply,
            }
        };
        self.rig
            .commands
            .send(cmd)
            .expect("the worker's command channel");
        self.timers("cut");
        assert!(rx.try_recv().is_ok(), "a cut not answered by housekeeping");
    }

    /// Lets every ARP retry run out and every timeout pass, then checks nothing is left.
    fn drain(&mut self) {
        for _ in 0..=MAX_TRIES {
            self.rig.advance(RETRY_MS);
            self.timers("drain");
        }
        self.rig.advance(lab::LONGEST_TIMEOUT_MS + RETRY_MS);
        self.timers("drain");
        invariants::drained(&self.rig);
        // The last connections renewed their clients' templates as they ended.
        self.rig.advance(lab::LONGEST_PERSISTENCE_MS + 1);
        invariants::templates_expired(&self.rig);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dpvs_testkit::rig::ME;

    /// The seeds pass, and each opens what it is about: every one sends something.
    #[test]
    fn seeds_pass_and_reach_the_worker() {
        for (name, input) in seeds::seeds() {
            let r = run_recording(&input);
            assert!(
                !r.sent.is_empty(),
                "seed {name} made the worker send nothing"
            );
        }
    }

    /// The seeds of the kernel twin, the connection limits and persistence reach their paths
    /// (counted before the drain).
    #[test]
    fn seeds_reach_the_twin_the_limits_and_the_templates() {
        use dpvs_core::drop::DropReason;
        let run = |name: &str| {
            let (_, input) = seeds::seeds()
                .into_iter()
                .find(|(n, _)| n == name)
                .expect("a seed");
            let mut h = Harness::new(None);
            for step in &input.0 {
                h.step(step);
            }
            h
        };
        let h = run("kernel");
        assert_eq!(h.rig.counters().to_kernel.get(), 3);
        assert_eq!(h.rig.drops(DropReason::KernelFull), 3);
        // RS1 of the wlc service took 3, its limit, before the rest went elsewhere.
        let h = run("sched_wlc_limits");
        let conns = |h: &Harness<'_>, port: u16, rs: u16| {
            let svc = h.rig.snap.services.iter().find(|s| s.key.port == port);
            let r = &svc.expect("a lab service").rs[usize::from(rs)];
            h.rig
                .stats
                .slot(usize::from(ME), r.slot)
                .expect("a slot")
                .conns
                .get()
        };
        assert_eq!(conns(&h, 85, 0), 5);
        assert_eq!(conns(&h, 85, 2), 4, "RS3 takes what the limits turn away");
        let h = run("sched_sh_persistent");
        assert_eq!(h.rig.snap.templates.live(h.rig.now).count(), 2);
        assert!(
            conns(&h, 87, 0) > 2,
            "a template keeps its client over the limit"
        );
    }

    /// Garbage passes too.
    #[test]
    fn arbitrary_bytes_pass() {
        for k in 0..200u32 {
            let data: Vec<u8> = (0..300u32)
                .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(k * 40_503) >> 13) as u8)
                .collect();
            run(&Input::decode(&data));
        }
    }
}
