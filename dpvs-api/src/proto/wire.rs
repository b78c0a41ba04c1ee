//! How requests and responses travel: the versioned envelope, the size limits, the line
//! encoding and decoding, and [`serve_line`], a server's whole work per line.
//!
//! One JSON object per line (UTF-8, `\n`-terminated) in each direction; a connection may carry
//! several request/response pairs, answered in order. Every message carries
//! [`PROTOCOL_VERSION`] so that a mismatched `dpvs-ctl`/`dpvs` pair fails with a clear message
//! instead of a confusing parse error.
//!
//! A request is `{"version":1,"request":{"op":"<snake_case op>","args":<op arguments>}}`; ops
//! without arguments omit `args`:
//! ```json
//! {"version":1,"request":{"op":"rs_add","args":{"service":"tcp:10.0.0.100:80","rs":{"addr":"192.168.10.11:8080","weight":3}}}}
//! {"version":1,"request":{"op":"stats"}}
//! ```
//! A response is `{"version":1,"ok":{"type":"<snake_case kind>","data":<payload>}}` or
//! `{"version":1,"error":"<one line>"}`:
//! ```json
//! {"version":1,"ok":{"type":"done"}}
//! {"version":1,"ok":{"type":"addrs","data":[{"addr":"10.0.0.1","prefix_len":24,"port":"dpdk0"}]}}
//! {"version":1,"error":"no such service tcp:10.0.0.100:80"}
//! ```
//! Readers ignore unknown fields, so a newer daemon may add fields without a version bump;
//! removing or retyping a field needs a new version.

use serde::{Deserialize, Serialize};

use super::{Request, Response};

/// The version this build speaks; requests and responses with another version are refused.
pub const PROTOCOL_VERSION: u32 = 1;

/// The longest request line a server should accept (a request is small; this bounds memory
/// spent on a misbehaving client).
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

/// The longest response line a client accepts (a connection dump can be large).
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// One request as sent on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEnvelope {
    pub version: u32,
    pub request: Request,
}

impl RequestEnvelope {
    /// Wraps `request` with this build's protocol version.
    pub fn new(request: Request) -> Self {
        RequestEnvelope {
            version: PROTOCOL_VERSION,
            request,
        }
    }
}

/// One response as sent on the wire: `{"version":1,"ok":...}` or `{"version":1,"error":"..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "WireResponse", try_from = "WireResponse")]
pub struct ResponseEnvelope {
    pub version: u32,
    pub result: Result<Response, String>,
}

impl ResponseEnvelope {
    /// Wraps a result with this build's protocol version; an error is flattened to one line.
    pub fn new(result: Result<Response, String>) -> Self {
        ResponseEnvelope {
            version: PROTOCOL_VERSION,
            result: result.map_err(|e| one_line(&e)),
        }
    }
}

/// The serialized shape of [`ResponseEnvelope`]: exactly one of `ok` and `error` is present.
#[derive(Serialize, Deserialize)]
struct WireResponse {
    version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<Response>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl From<ResponseEnvelope> for WireResponse {
    fn from(env: ResponseEnvelope) -> Self {
        let (ok, error) = match env.result {
            Ok(r) => (Some(r), None),
            Err(e) => (None, Some(one_line(&e))),
        };
        WireResponse {
            version: env.version,
            ok,
            error,
        }
    }
}

impl TryFrom<WireResponse> for ResponseEnvelope {
    type Error = String;
    fn try_from(w: WireResponse) -> Result<Self, String> {
        let result = match (w.ok, w.error) {
            (Some(r), None) => Ok(r),
            (None, Some(e)) => Err(e),
            _ => return Err("a response needs exactly one of `ok` and `error`".into()),
        };
        Ok(ResponseEnvelope {
            version: w.version,
            result,
        })
    }
}

/// Serializes a request as one line (no trailing newline).
pub fn encode_request(req: &RequestEnvelope) -> String {
    // Serializing these plain data types cannot fail (no maps with non-string keys).
    serde_json::to_string(req).unwrap_or_default()
}

/// Serializes a response as one line (no trailing newline).
pub fn encode_response(resp: &ResponseEnvelope) -> String {
    serde_json::to_string(resp).unwrap_or_default()
}

/// Parses one request line, given as text or as the bytes read (`&str`, `&[u8]`, ...). The
/// error is one line, meant to be sent back to the client as `{"error": ...}`. The version is
/// checked before the body so that a newer client sending an op this daemon does not know is
/// told about the version, not about the op.
///
/// A pure function of its input that answers every input, valid UTF-8 or not, with a request
/// or an error and never panics (nesting is bounded by serde_json's recursion limit): this is
/// the fuzz target of the control protocol.
pub fn decode_request(line: impl AsRef<[u8]>) -> Result<RequestEnvelope, String> {
    let value = parse_versioned(line.as_ref(), "request", "the daemon")?;
    serde_json::from_value(value)
        .map_err(|e| format!("invalid request: {}", one_line(&e.to_string())))
}

/// Parses one response line, checking the version first (see [`decode_request`]).
pub fn decode_response(line: impl AsRef<[u8]>) -> Result<ResponseEnvelope, String> {
    let value = parse_versioned(line.as_ref(), "response", "this client")?;
    serde_json::from_value(value)
        .map_err(|e| format!("invalid response: {}", one_line(&e.to_string())))
}

/// Parses JSON and checks its `version` field; `what` names the message and `me` the reader in
/// errors.
fn parse_versioned(line: &[u8], what: &str, me: &str) -> Result<serde_json::Value, String> {
    let value: serde_json::Value = serde_json::from_slice(line.trim_ascii_end())
        .map_err(|e| format!("malformed {what}: {}", one_line(&e.to_string())))?;
    let version = value
        .get("version")
        .ok_or_else(|| format!("malformed {what}: no protocol version"))?;
    match version.as_u64() {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => Ok(value),
        Some(v) => Err(format!(
            "protocol version mismatch: the {what} is version {v} but {me} speaks version {PROTOCOL_VERSION}"
        )),
        None => Err(format!(
            "malformed {what}: version {version} is not a number"
        )),
    }
}

/// Answers one request line with one response line (no trailing newline): decodes it, runs
/// `handle` on a well-formed request, and wraps the outcome. This is all a server needs per
/// line, so decoding errors are reported the same way by every server.
pub fn serve_line(line: &str, handle: impl FnOnce(Request) -> Result<Response, String>) -> String {
    let result = decode_request(line).and_then(|env| handle(env.request));
    encode_response(&ResponseEnvelope::new(result))
}

/// Collapses line breaks (`\n`, `\r` or both), since the protocol and the CLI promise one-line
/// errors.
pub fn one_line(s: &str) -> String {
    if !s.contains(['\n', '\r']) {
        return s.to_string();
    }
    s.split(['\n', '\r'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;
    use crate::proto::*;
    use crate::{Forward, MacAddr, Persistence, Sched, SchedFlags, ServiceKey};

    fn svc() -> ServiceKey {
        "tcp:10.0.0.100:80".parse().unwrap()
    }

    fn all_requests() -> Vec<Request> {
        let ip: IpAddr = "192.168.10.200".parse().unwrap();
        let rs = RsSpec {
            upper: Some(100),
            lower: Some(50),
            ..RsSpec::new("192.168.10.11:8080".parse().unwrap(), 3)
        };
        let spec = ServiceSpec {
            sched_flags: SchedFlags {
                fallback: true,
                port: true,
            },
            persistence: Some(Persistence {
                timeout: 300,
                netmask: 24,
            }),
            mh_table_size: Some(65_537),
            ..ServiceSpec::new(svc(), Sched::Mh, Forward::Fnat)
        };
        let route = RouteSpec {
            prefix: "192.168.10.0".parse().unwrap(),
            prefix_len: 24,
            port: "dpdk0".into(),
            via: Some("10.0.0.254".parse().unwrap()),
            src: None,
        };
        vec![
            Request::ServiceAdd(spec.clone()),
            Request::ServiceEdit(spec),
            Request::ServiceDel { service: svc() },
            Request::ServiceList { stats: true },
            Request::RsAdd {
                service: svc(),
                rs: rs.clone(),
            },
            Request::RsEdit {
                service: svc(),
                rs: RsSpec {
                    forward: Some(Forward::Dr),
                    ..rs
                },
            },
            Request::RsDel {
                service: svc(),
                addr: "192.168.10.11:8080".parse().unwrap(),
            },
            Request::LaddrAdd {
                service: svc(),
                addr: ip,
                port: Some("dpdk1".into()),
            },
            Request::LaddrAdd {
                service: svc(),
                addr: ip,
                port: None,
            },
            Request::LaddrDel {
                service: svc(),
                addr: ip,
            },
            Request::LaddrList { service: None },
            Request::LaddrList {
                service: Some(svc()),
            },
            Request::AddrAdd {
                addr: ip,
                prefix_len: 32,
                port: "dpdk0".into(),
            },
            Request::AddrDel { addr: ip },
            Request::AddrList,
            Request::RouteAdd(route),
            Request::RouteDel {
                prefix: "192.168.10.0".parse().unwrap(),
                prefix_len: 24,
            },
            Request::RouteList,
            Request::NeighAdd {
                addr: ip,
                mac: "02:00:00:00:00:11".parse().unwrap(),
                port: "p".into(),
            },
            Request::NeighDel { addr: ip },
            Request::NeighList,
            Request::ConnList {
                service: Some(svc()),
                limit: Some(10),
            },
            Request::ConnList {
                service: None,
                limit: None,
            },
            Request::Stats,
            Request::LinkList,
        ]
    }

    #[test]
    fn every_request_round_trips() {
        for req in all_requests() {
            let line = encode_request(&RequestEnvelope::new(req.clone()));
            assert!(!line.contains('\n'));
            assert_eq!(decode_request(&line).unwrap().request, req, "{line}");
        }
    }

    #[test]
    fn request_wire_shape() {
        let req = Request::RsAdd {
            service: svc(),
            rs: RsSpec::new("192.168.10.11:8080".parse().unwrap(), 3),
        };
        assert_eq!(
            encode_request(&RequestEnvelope::new(req)),
            r#"{"version":1,"request":{"op":"rs_add","args":{"service":"tcp:10.0.0.100:80","rs":{"addr":"192.168.10.11:8080","weight":3}}}}"#
        );
        assert_eq!(
            encode_request(&RequestEnvelope::new(Request::Stats)),
            r#"{"version":1,"request":{"op":"stats"}}"#
        );
    }

    fn sample_responses() -> Vec<Response> {
        let counters = Counters {
            conns: 1,
            in_pkts: 2,
            out_pkts: 3,
            in_bytes: 4,
            out_bytes: 5,
        };
        let mut w = WorkerStats {
            id: 0,
            lcore: 1,
            counters: WorkerCounters {
                rx_pkts: 10,
                ..Default::default()
            },
            ..Default::default()
        };
        w.drops.insert("no_route".into(), 2);
        let mut service = crate::samples::service();
        service.sched = Sched::Wrr;
        service.stats = Some(counters);
        service.rs[0].stats = Some(counters);
        vec![
            Response::Done,
            Response::Services(vec![service]),
            Response::Laddrs(vec![LaddrInfo {
                service: svc(),
                addr: "192.168.10.200".parse().unwrap(),
                port: None,
            }]),
            Response::Addrs(vec![AddrInfo {
                addr: "10.0.0.1".parse().unwrap(),
                prefix_len: 24,
                port: "dpdk0".into(),
            }]),
            Response::Routes(vec![]),
            Response::Neighs(vec![NeighInfo {
                addr: "192.168.10.11".parse().unwrap(),
                mac: MacAddr([2, 0, 0, 0, 0, 0x11]),
                port: "dpdk1".into(),
                kind: NeighKind::Learnt,
            }]),
            Response::Conns(vec![crate::samples::conn()]),
            Response::Stats(StatsInfo::from_workers(vec![w])),
            Response::Links(vec![LinkInfo {
                name: "dpdk0".into(),
                ..Default::default()
            }]),
        ]
    }

    #[test]
    fn every_response_round_trips() {
        for resp in sample_responses() {
            let env = ResponseEnvelope::new(Ok(resp));
            let line = encode_response(&env);
            assert!(!line.contains('\n'));
            assert_eq!(decode_response(&line).unwrap(), env, "{line}");
        }
        let err = ResponseEnvelope::new(Err("no such\nservice".into()));
        let line = encode_response(&err);
        assert_eq!(line, r#"{"version":1,"error":"no such; service"}"#);
        assert_eq!(decode_response(&line).unwrap(), err);
    }

    /// The exact lines every sample response is sent as: field names, order and tagging are
    /// what scripts and older clients read, so any change shows here.
    #[test]
    fn response_lines_are_pinned() {
        let want = [
            r#"{"version":1,"ok":{"type":"done"}}"#,
            r#"{"version":1,"ok":{"type":"services","data":[{"key":"tcp:10.0.0.100:80","sched":"wrr","forward":"fnat","laddrs":["192.168.10.200"],"rs":[{"addr":"192.168.10.11:8080","weight":1,"forward":"fnat","active_conns":3,"inactive_conns":0,"stats":{"conns":1,"in_pkts":2,"out_pkts":3,"in_bytes":4,"out_bytes":5}}],"stats":{"conns":1,"in_pkts":2,"out_pkts":3,"in_bytes":4,"out_bytes":5}}]}}"#,
            r#"{"version":1,"ok":{"type":"laddrs","data":[{"service":"tcp:10.0.0.100:80","addr":"192.168.10.200"}]}}"#,
            r#"{"version":1,"ok":{"type":"addrs","data":[{"addr":"10.0.0.1","prefix_len":24,"port":"dpdk0"}]}}"#,
            r#"{"version":1,"ok":{"type":"routes","data":[]}}"#,
            r#"{"version":1,"ok":{"type":"neighs","data":[{"addr":"192.168.10.11","mac":"02:00:00:00:00:11","port":"dpdk1","kind":"learnt"}]}}"#,
            r#"{"version":1,"ok":{"type":"conns","data":[{"proto":"tcp","client":"10.0.0.2:40000","vip":"10.0.0.100:80","laddr":"192.168.10.200:1028","rs":"192.168.10.11:8080","state":"ESTABLISHED","expires_in_s":899,"worker":1}]}}"#,
            r#"{"version":1,"ok":{"type":"stats","data":{"workers":[{"id":0,"lcore":1,"rx_pkts":10,"tx_pkts":0,"conns_active":0,"conns_created":0,"kernel_pkts":0,"ring_in":0,"ring_out":0,"busy_cycles":0,"busy_pkts":0,"drops":{"no_route":2}}],"total":{"rx_pkts":10,"tx_pkts":0,"conns_active":0,"conns_created":0,"kernel_pkts":0,"ring_in":0,"ring_out":0,"drops":2},"drops_total":{"no_route":2},"mbuf_in_use":0,"mbuf_capacity":0}}}"#,
            r#"{"version":1,"ok":{"type":"links","data":[{"name":"dpdk0","device":"","port_id":0,"mac":"00:00:00:00:00:00","driver":"","link_up":false,"speed_mbps":0,"rx_queues":0,"tx_queues":0,"steering":"","rx_pkts":0,"tx_pkts":0,"rx_bytes":0,"tx_bytes":0,"rx_missed":0,"rx_errors":0,"tx_errors":0,"rx_nombuf":0}]}}"#,
        ];
        let got: Vec<String> = sample_responses()
            .into_iter()
            .map(|r| encode_response(&ResponseEnvelope::new(Ok(r))))
            .collect();
        assert_eq!(got, want);
    }

    /// Every stats counter under its own key, with a value of its own (a swapped pair of
    /// fields would show).
    #[test]
    fn response_wire_shape() {
        let addrs = Response::Addrs(vec![AddrInfo {
            addr: "10.0.0.1".parse().unwrap(),
            prefix_len: 24,
            port: "dpdk0".into(),
        }]);
        assert_eq!(
            encode_response(&ResponseEnvelope::new(Ok(addrs))),
            r#"{"version":1,"ok":{"type":"addrs","data":[{"addr":"10.0.0.1","prefix_len":24,"port":"dpdk0"}]}}"#
        );
        assert_eq!(
            encode_response(&ResponseEnvelope::new(Ok(Response::Done))),
            r#"{"version":1,"ok":{"type":"done"}}"#
        );
    }

    #[test]
    fn wrong_version_is_refused_before_the_body() {
        let e = decode_request(r#"{"version":2,"request":{"op":"frobnicate"}}"#).unwrap_err();
        assert_eq!(
            e,
            "protocol version mismatch: the request is version 2 but the daemon speaks version 1"
        );
        let e = decode_response(r#"{"version":0,"ok":{"type":"done"}}"#).unwrap_err();
        assert!(e.contains("response is version 0 but this client"), "{e}");
        let e = decode_request(r#"{"request":{"op":"stats"}}"#).unwrap_err();
        assert_eq!(e, "malformed request: no protocol version");
        let e = decode_request(r#"{"version":"1","request":{"op":"stats"}}"#).unwrap_err();
        assert!(e.contains("not a number"), "{e}");
    }

    #[test]
    fn malformed_lines_give_one_line_errors() {
        for (line, want) in [
            ("", "malformed request: "),
            ("{not json", "malformed request: "),
            ("[1,2]", "malformed request: no protocol version"),
            (
                r#"{"version":1,"request":{"op":"frobnicate"}}"#,
                "invalid request: unknown variant",
            ),
            (
                r#"{"version":1,"request":{"op":"service_del","args":{}}}"#,
                "invalid request: missing field `service`",
            ),
            (
                r#"{"version":1,"request":{"op":"service_del","args":{"service":"tcp:1.2.3.4"}}}"#,
                "invalid request: invalid service",
            ),
        ] {
            let e = decode_request(line).unwrap_err();
            assert!(e.starts_with(want), "{line:?} gave {e:?}");
            assert!(!e.contains('\n'));
        }
        let e = decode_response(r#"{"version":1}"#).unwrap_err();
        assert!(e.contains("exactly one of"), "{e}");
        let e = decode_response(r#"{"version":1,"ok":{"type":"done"},"error":"x"}"#).unwrap_err();
        assert!(e.contains("exactly one of"), "{e}");
    }

    /// The decoder answers every input with a request or a one-line error and never panics:
    /// every prefix of every request line, each of their bytes replaced by bytes that matter
    /// to JSON or UTF-8, and inputs made to hurt (deep nesting, invalid UTF-8, numbers out of
    /// range, lone surrogates, line breaks inside names).
    #[test]
    fn decoder_answers_any_bytes() {
        let check = |bytes: &[u8]| {
            if let Err(e) = decode_request(bytes) {
                let input = String::from_utf8_lossy(bytes);
                assert!(!e.contains(['\n', '\r']), "{input:?} gave {e:?}");
            }
        };
        let replacements = [
            0x00, b' ', b'"', b'\\', b'{', b'}', b'[', b']', b':', b',', b'0', b'\n', b'\r', 0x80,
            0xc3, 0xff,
        ];
        for req in all_requests() {
            let line = encode_request(&RequestEnvelope::new(req)).into_bytes();
            for end in 0..line.len() {
                check(&line[..end]);
            }
            for i in 0..line.len() {
                for b in replacements {
                    let mut mutated = line.clone();
                    mutated[i] = b;
                    check(&mutated);
                }
            }
        }
        let nested = |open: &str| format!(r#"{{"version":1,"request":{}"#, open.repeat(100_000));
        for input in [
            nested("["),
            nested(r#"{"op":"#),
            "[".repeat(1 << 20),
            r#"{"version":18446744073709551616,"request":{"op":"stats"}}"#.into(),
            r#"{"version":1e999,"request":{"op":"stats"}}"#.into(),
            r#"{"version":-1,"request":{"op":"stats"}}"#.into(),
            r#"{"version":1,"request":{"op":"rs_del","args":{"service":"tcp:1.2.3.4:80","addr":"1.2.3.4:65536"}}}"#.into(),
            r#"{"version":1,"request":{"op":"neigh_add","args":{"addr":"10.0.0.1","mac":"\ud800","port":"p"}}}"#.into(),
            r#"{"version":1,"request":{"op":"a\r\nb\rc"}}"#.into(),
            r#"{"version":1,"request":{"op":"addr_add","args":{"addr":"10.0.0.1","prefix_len":256,"port":"\u0000"}}}"#.into(),
        ] {
            check(input.as_bytes());
        }
        for bytes in [
            &b"\xff\xfe"[..],
            b"\xc3(",
            b"{\"version\":1,\"request\":{\"op\":\"\xff\"}}",
        ] {
            check(bytes);
        }
    }

    /// Found by the test above: serde quotes an unknown op as sent, and a lone `\r` in it
    /// (`"op":"a\rb"`) went through `str::lines`, which breaks only at `\n`.
    #[test]
    fn a_lone_carriage_return_is_a_line_break() {
        assert_eq!(one_line("a\rb\r\nc\n"), "a; b; c");
        let e = decode_request(r#"{"version":1,"request":{"op":"a\rb"}}"#).unwrap_err();
        assert!(
            e.starts_with("invalid request: unknown variant `a; b`"),
            "{e:?}"
        );
    }

    #[test]
    fn bytes_and_text_decode_alike() {
        let line = encode_request(&RequestEnvelope::new(Request::Stats));
        assert_eq!(decode_request(line.as_bytes()), decode_request(&line));
        assert_eq!(decode_request(format!("{line}\r\n")), decode_request(line));
    }

    #[test]
    fn serve_line_wraps_handler_and_decode_errors() {
        let ok = serve_line(r#"{"version":1,"request":{"op":"addr_list"}}"#, |req| {
            assert_eq!(req, Request::AddrList);
            Ok(Response::Addrs(vec![]))
        });
        assert_eq!(ok, r#"{"version":1,"ok":{"type":"addrs","data":[]}}"#);
        let err = serve_line("garbage", |_| unreachable!());
        assert!(
            err.starts_with(r#"{"version":1,"error":"malformed request: "#),
            "{err}"
        );
        let err = serve_line(r#"{"version":1,"request":{"op":"stats"}}"#, |_| {
            Err("stats unavailable".into())
        });
        assert_eq!(err, r#"{"version":1,"error":"stats unavailable"}"#);
    }

    #[test]
    fn unknown_fields_are_ignored_for_forward_compatibility() {
        let line = r#"{"version":1,"ok":{"type":"addrs","data":[{"addr":"10.0.0.1","prefix_len":24,"port":"dpdk0","scope":"global"}]},"trace":"x"}"#;
        assert!(decode_response(line).unwrap().result.is_ok());
    }
}
