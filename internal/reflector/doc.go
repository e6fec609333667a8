// Package reflector is synprobe's cooperating endpoint for middlebox
// diagnosis (synprobe reflect) and the client that synprobe trace uses to
// ask it what arrived.
//
// A reflector runs on the target host. It listens on the probed port with
// an ordinary TCP listener (the kernel answers SYNs; connections are read
// and discarded, never written to), captures every TCP segment to or from
// that port on the interface holding the address (AF_PACKET, IP and TCP
// headers as received, and the segments the kernel sent back), and serves
// these records on a report port. The client compares them with what it
// sent: the last segment before the target, which no router quotes, NAT,
// sequence translation and the reverse direction become visible.
//
// With Config.CaptureOnly (synprobe reflect --capture-only) it does not
// listen: a server of the host's own answers on the port, and the
// reflector records that service's segments (trace then probes the real
// service, and a box that intercepts only that port is seen).
//
// # Report protocol (version 1)
//
// TCP on the report port (default: the listen port + 1, on the same address
// only). A client not in the allow list is disconnected without a byte. An
// allowed client sends one request line (JSON, at most 4096 bytes, ended by
// "\n") within 5 seconds:
//
//	{"v":1,"port":8080,"within_ms":5000,"seq":[3735928559],"tsval":[1],"payload_sha256":["<64 hex digits>"]}
//
// The fields:
//
//   - v: 1, required.
//   - port: the reflected port; 0 or absent means the reflected port, another
//     one is an error (a port forwarded by a NAT has another number on each side).
//   - within_ms: only records captured in the last within_ms milliseconds of
//     the reflector's clock (the two hosts' clocks are never compared); 0 or
//     absent: everything kept.
//   - seq: sequence numbers (the ISN of a SYN, or the seq of any segment).
//   - tsval: TCP timestamp values (TSval of the Timestamps option).
//   - payload_sha256: SHA-256 digests of segment payloads, in hex.
//
// At most 256 keys in all; unknown fields are an error. A record matches
// when its seq, its TSval or its payload digest is one of the keys (either
// direction). For each matched inbound segment, the outbound segments on
// its 4-tuple as seen at the reflector are added (match "tuple"): what the
// reflector's kernel sent back. A request without keys selects every record
// in the window. The answer is one JSON line per record, oldest first, then
// one end line, and the reflector closes the connection:
//
//	{"type":"record","n":17,"time":"2026-12-04T18:00:00.123456789Z","age_us":2500,"dir":"in",
//	 "header":"4500003c...","payload_len":0,"payload_sha256":"e3b0...","ip_checksum":"valid",
//	 "tcp_checksum":"valid","match":["seq","tsval"]}
//	{"type":"end","v":1,"port":8080,"records":2,"truncated":false,"kept":40,"capacity":65536,
//	 "expiry_ms":120000,"oldest_age_us":90000000,"overwritten":0,"kernel_drops":0}
//
// A record is a captured segment: n counts captures (gaps are records that
// expired or were overwritten), time is the capture time on the reflector's
// clock and age_us its age when the answer was made, dir is "in" (arrived)
// or "out" (sent by the reflector's host), header the IP and TCP headers as
// captured in hex (up to the TCP data offset; never the payload), and the
// payload only as its length and SHA-256 digest. Checksums are "valid",
// "invalid", "not-final" (left to an offload on the reflector's host: not a
// fault) or "unchecked". At most 4096 records are sent: the newest ones,
// with truncated set. A bad request gets one line {"type":"error",
// "error":"..."} and the connection is closed; the message never repeats
// what the client sent.
//
// # Safety
//
// The reflector binds the given address only (never a wildcard), answers
// report clients in the allow list only (an empty list answers nobody),
// keeps a bounded number of records (oldest overwritten) that expire,
// serves at most 16 report clients and 256 probe connections at once, never
// writes application data on the probed port, never executes anything and
// never echoes what it was sent: payloads are kept only as their length and
// digest.
package reflector
