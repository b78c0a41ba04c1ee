//! The `pipeline` target: the whole worker (`Worker::process`, `process_burst`,
//! `housekeeping`, commands) driven through testkit's [`Rig`] over a lab with services in every
//! forwarding mode ([`lab`]), by a sequence of steps decoded from the input ([`input`]):
//! frames from the clients' port (0) and the real servers' (1), alone or in bursts, raw or
//! built from templates ([`frames`]), interleaved with clock advances, housekeeping, the
//! control plane publishing what the worker learnt, route changes, and flushes. After every
//! step the invariants in [`invariants`] are checked; at the end the worker is drained and
//! must hold nothing.

pub mod frames;
pub mod input;
pub mod invariants;
pub mod lab;
pub mod seeds;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crossbeam_channel::bounded;
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

struct Harness<'a> {
    rig: Rig<Tracked>,
    svc_slots: Vec<u32>,
    rs_slots: Vec<u32>,
    clock_ms: u64,
    record: Option<&'a mut Recording>,
}

impl<'a> Harness<'a> {
    fn new(record: Option<&'a mut Recording>) -> Harness<'a> {
        let state = lab::state();
        let (svc_slots, rs_slots) = lab::slots(&state);
        Harness {
            rig: Rig::new(state, lab::LIMITS),
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
            Step::Flush { service, index } => self.flush(*service, *index),
            Step::Route(i) => self.route(*i),
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
        let before = Tally::take(&self.rig);
        let out = if burst {
            self.rig.send_burst(port, frames)
        } else {
            self.rig.send(port, &frames[0])
        };
        let after = Tally::take(&self.rig);
        let what = if burst { "burst" } else { "frame" };
        invariants::every_frame_sent_parked_or_counted(before, after, consumed, what);
        invariants::emitted_frames_are_well_formed(&self.rig.snap, &out, inputs_valid, what);
        self.record(frames, &out);
        drop(out);
        invariants::conn_accounting_consistent(&self.rig, what);
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
        let before = Tally::take(&self.rig);
        let out = step(&mut self.rig);
        let after = Tally::take(&self.rig);
        invariants::every_frame_sent_parked_or_counted(before, after, 0, what);
        // Parked frames may have come in with bad checksums: only the rest is checked.
        invariants::emitted_frames_are_well_formed(&self.rig.snap, &out, false, what);
        self.record(&[], &out);
        drop(out);
        invariants::conn_accounting_consistent(&self.rig, what);
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

    /// Ends the connections of a service or real server as a deletion does (without deleting
    /// it: new connections to it go on, which the accounting must survive too).
    fn flush(&mut self, service: bool, index: u8) {
        let (reply, rx) = bounded(1);
        let cmd = if service {
            let slot = self.svc_slots[usize::from(index) % self.svc_slots.len()];
            Command::FlushService {
                svc_slot: slot,
                reply,
            }
        } else {
            let slot = self.rs_slots[usize::from(index) % self.rs_slots.len()];
            Command::FlushRs {
                rs_slot: slot,
                reply,
            }
        };
        self.rig
            .commands
            .send(cmd)
            .expect("the worker's command channel");
        self.timers("flush");
        assert!(
            rx.try_recv().is_ok(),
            "a flush not answered by housekeeping"
        );
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
