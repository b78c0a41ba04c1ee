//! The control protocol on arbitrary lines: `dpvs_api::decode_request` never panics and its
//! errors are one line; what it decodes survives its own encoding, and is served by the
//! daemon's `Control::handle` against a lab control plane (the requests of one input in
//! sequence, so that later ones see what earlier ones changed), whose errors are one line too
//! and whose every answer the client can read back.
#![no_main]

use std::sync::Arc;

use dpvs_api::{
    ResponseEnvelope, decode_request, decode_response, encode_request, encode_response,
};
use dpvs_core::engine::stats::Stats;
use dpvs_core::engine::tcp_state::Timeouts;
use dpvs_daemon::control::handler::{Control, Detached};
use dpvs_daemon::control::publish::Publisher;
use dpvs_testkit::lab::{RS1, RS2, SLOTS, lab_state};
use libfuzzer_sys::fuzz_target;

/// Requests one input may make (a bound on the work per input).
const MAX_LINES: usize = 64;
/// Persistence templates (the daemon's default is a million, allocated with the first
/// persistent service: too much to allocate per input).
const TEMPLATES: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut control = lab_control();
    for line in text.split('\n').take(MAX_LINES) {
        serve(&mut control, line);
    }
});

/// The lab's control plane (two ports, the client side's with a kernel twin, our addresses,
/// the FullNAT TCP and UDP services), with no workers (requests for worker state get empty
/// answers) and no kernel bridge (the twins' configuration is kept, and applied to nothing).
fn lab_control() -> Control {
    let mut state = lab_state(Timeouts::default(), &[RS1, RS2]).with_templates(TEMPLATES);
    state.ports[0].kni = true;
    let publisher = Publisher::new(state.snapshot(), state.neigh_table());
    Control {
        state,
        publisher,
        stats: Arc::new(Stats::new(1, SLOTS as usize)),
        commands: vec![],
        dataplane: Box::new(Detached),
        kernel: Default::default(),
        rates: Default::default(),
    }
}

/// What the control socket does with one line (`dpvs_api::serve_line`), piece by piece.
fn serve(control: &mut Control, line: &str) {
    let decoded = decode_request(line);
    match &decoded {
        Err(e) => assert_one_line(e, "decode_request"),
        Ok(env) => assert_eq!(
            decode_request(encode_request(env)).as_ref(),
            Ok(env),
            "a request does not survive its own encoding"
        ),
    }
    let result = decoded.and_then(|env| control.handle(env.request));
    if let Err(e) = &result {
        assert_one_line(e, "Control::handle");
    }
    let wire = encode_response(&ResponseEnvelope::new(result.clone()));
    assert_one_line(&wire, "the response line");
    let back = decode_response(&wire).expect("the client cannot read the daemon's response");
    assert_eq!(
        back.result, result,
        "a response does not survive its encoding"
    );
}

fn assert_one_line(s: &str, what: &str) {
    assert!(!s.contains(['\n', '\r']), "{what}: not one line: {s:?}");
}
