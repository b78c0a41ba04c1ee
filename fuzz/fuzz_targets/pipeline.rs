//! The whole worker pipeline on sequences of steps (frames from both sides, alone or in
//! bursts, clock advances, housekeeping, control-plane publications, flushes), with the
//! invariants checked after every step. See `dpvs_fuzz::pipeline`.
#![no_main]

use dpvs_fuzz::pipeline::{self, input::Input};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: Input| pipeline::run(&input));
