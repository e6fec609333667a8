package reflector

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"synprobe/probe"
)

// ProtocolVersion is the report protocol's version (the "v" of a request).
const ProtocolVersion = 1

// Limits of the report protocol.
const (
	// MaxRequestLen bounds a request line, with its newline.
	MaxRequestLen = 4096
	// MaxKeys bounds the seq, tsval and payload_sha256 keys of a request,
	// together.
	MaxKeys = 256
	// MaxAnswerRecords bounds the records of one answer; the newest are kept.
	MaxAnswerRecords = 4096
)

// Request selects records: those of Port captured within the last Within
// (the reflector's clock) whose seq, TSval or payload digest is one of the
// keys, and the reflector's outbound segments on the 4-tuples of the
// matched inbound ones. Without keys, every record in the window.
type Request struct {
	// Port is the reflected port; 0 means whatever port the reflector
	// records.
	Port uint16
	// Within limits the records to those captured in the last Within on
	// the reflector's clock; 0 means every record kept. It is sent in
	// milliseconds (rounded up).
	Within time.Duration
	// Seq are sequence numbers: the ISN of a SYN, or the seq of any segment.
	Seq []probe.Seq
	// TSval are timestamp values of the Timestamps option.
	TSval []uint32
	// PayloadSHA256 are digests of segment payloads (of non-empty ones: an
	// empty payload matches nothing).
	PayloadSHA256 [][32]byte
}

func (r Request) keys() int { return len(r.Seq) + len(r.TSval) + len(r.PayloadSHA256) }

// requestFields are the fields of a version 1 request, for messages.
const requestFields = "v, port, within_ms, seq, tsval, payload_sha256"

// maxWithinMS bounds within_ms (about 24 days) so that it fits a Duration.
const maxWithinMS = 1 << 31

// marshal encodes r as a request line, with its newline.
func (r Request) marshal() ([]byte, error) {
	if n := r.keys(); n > MaxKeys {
		return nil, fmt.Errorf("request has %d keys, the protocol takes at most %d", n, MaxKeys)
	}
	if r.Within < 0 {
		return nil, fmt.Errorf("request window %v is negative", r.Within)
	}
	ms := (r.Within + time.Millisecond - 1) / time.Millisecond
	if ms > maxWithinMS {
		return nil, fmt.Errorf("request window %v is longer than %d ms", r.Within, maxWithinMS)
	}
	w := wireRequest{V: ProtocolVersion, Port: r.Port, WithinMS: int64(ms), TSval: r.TSval}
	for _, s := range r.Seq {
		w.Seq = append(w.Seq, uint32(s))
	}
	for _, h := range r.PayloadSHA256 {
		w.PayloadSHA256 = append(w.PayloadSHA256, hex.EncodeToString(h[:]))
	}
	b, err := json.Marshal(w)
	if err != nil {
		return nil, err
	}
	if len(b)+1 > MaxRequestLen {
		return nil, fmt.Errorf("request is %d bytes, the protocol takes at most %d", len(b)+1, MaxRequestLen)
	}
	return append(b, '\n'), nil
}

type wireRequest struct {
	V             int      `json:"v"`
	Port          uint16   `json:"port,omitempty"`
	WithinMS      int64    `json:"within_ms,omitempty"`
	Seq           []uint32 `json:"seq,omitempty"`
	TSval         []uint32 `json:"tsval,omitempty"`
	PayloadSHA256 []string `json:"payload_sha256,omitempty"`
}

// errRequest is the cause of every parse error; the messages never contain
// the request's bytes (the reflector echoes nothing).
var errRequest = errors.New("bad request")

func requestErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRequest, fmt.Sprintf(format, args...))
}

// parseRequest parses one request line (without its newline). Its errors
// name the field and the problem, never the offending bytes.
func parseRequest(line []byte) (Request, error) {
	if len(line) >= MaxRequestLen {
		return Request{}, requestErr("longer than %d bytes", MaxRequestLen-1)
	}
	var fields map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(line))
	if err := d.Decode(&fields); err != nil || fields == nil {
		return Request{}, requestErr("not one JSON object")
	}
	if d.More() {
		return Request{}, requestErr("more than one JSON value on the line")
	}
	var r Request
	var w wireRequest
	for name, raw := range fields {
		var err error
		switch name {
		case "v":
			err = json.Unmarshal(raw, &w.V)
		case "port":
			err = json.Unmarshal(raw, &w.Port)
		case "within_ms":
			err = json.Unmarshal(raw, &w.WithinMS)
		case "seq":
			err = json.Unmarshal(raw, &w.Seq)
		case "tsval":
			err = json.Unmarshal(raw, &w.TSval)
		case "payload_sha256":
			err = json.Unmarshal(raw, &w.PayloadSHA256)
		default:
			return Request{}, requestErr("a field that protocol version %d does not have (it has %s)", ProtocolVersion, requestFields)
		}
		if err != nil {
			return Request{}, requestErr("field %s: %s", name, fieldWant(name))
		}
	}
	if w.V != ProtocolVersion {
		return Request{}, requestErr("field v: want %d (the protocol version this reflector speaks)", ProtocolVersion)
	}
	if w.WithinMS < 0 || w.WithinMS > maxWithinMS {
		return Request{}, requestErr("field within_ms: want 0 to %d", maxWithinMS)
	}
	if n := len(w.Seq) + len(w.TSval) + len(w.PayloadSHA256); n > MaxKeys {
		return Request{}, requestErr("%d keys, at most %d", n, MaxKeys)
	}
	r.Port = w.Port
	r.Within = time.Duration(w.WithinMS) * time.Millisecond
	for _, s := range w.Seq {
		r.Seq = append(r.Seq, probe.Seq(s))
	}
	r.TSval = w.TSval
	for i, h := range w.PayloadSHA256 {
		var d [32]byte
		if len(h) != 2*len(d) {
			return Request{}, requestErr("payload_sha256[%d]: want 64 hex digits", i)
		}
		if _, err := hex.Decode(d[:], []byte(h)); err != nil {
			return Request{}, requestErr("payload_sha256[%d]: want 64 hex digits", i)
		}
		r.PayloadSHA256 = append(r.PayloadSHA256, d)
	}
	return r, nil
}

func fieldWant(name string) string {
	switch name {
	case "v", "within_ms":
		return "want a non-negative integer"
	case "port":
		return "want an integer from 0 to 65535"
	case "seq", "tsval":
		return "want an array of integers from 0 to 4294967295"
	case "payload_sha256":
		return "want an array of strings"
	}
	return "bad value"
}

// Lines of an answer. Every line has a "type": "record", "end" or "error".
type wireRecord struct {
	Type          string   `json:"type"`
	N             uint64   `json:"n"`
	Time          string   `json:"time"`
	AgeUS         int64    `json:"age_us"`
	Dir           string   `json:"dir"`
	Header        string   `json:"header"`
	PayloadLen    int      `json:"payload_len"`
	PayloadSHA256 string   `json:"payload_sha256"`
	IPChecksum    string   `json:"ip_checksum"`
	TCPChecksum   string   `json:"tcp_checksum"`
	Match         []string `json:"match"`
}

type wireEnd struct {
	Type        string `json:"type"`
	V           int    `json:"v"`
	Port        uint16 `json:"port"`
	Records     int    `json:"records"`
	Truncated   bool   `json:"truncated"`
	Kept        int    `json:"kept"`
	Capacity    int    `json:"capacity"`
	ExpiryMS    int64  `json:"expiry_ms"`
	OldestAgeUS int64  `json:"oldest_age_us"`
	Overwritten uint64 `json:"overwritten"`
	KernelDrops uint64 `json:"kernel_drops"`
}

type wireError struct {
	Type  string `json:"type"`
	Error string `json:"error"`
}

const (
	lineRecord = "record"
	lineEnd    = "end"
	lineError  = "error"
)

// Direction says which way a captured segment went.
type Direction uint8

const (
	// In is a segment that arrived at the reflector's host.
	In Direction = iota + 1
	// Out is a segment the reflector's host sent (its kernel's SYN-ACK,
	// ACKs, RSTs).
	Out
)

func (d Direction) String() string {
	switch d {
	case In:
		return "in"
	case Out:
		return "out"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

func parseDirection(s string) (Direction, bool) {
	switch s {
	case "in":
		return In, true
	case "out":
		return Out, true
	}
	return 0, false
}

// Match says why a record was selected.
type Match uint8

const (
	// MatchSeq: the segment's seq is one of the request's.
	MatchSeq Match = 1 << iota
	// MatchTSval: its TSval is one of the request's.
	MatchTSval
	// MatchPayload: its payload digest is one of the request's.
	MatchPayload
	// MatchTuple: an outbound segment on the 4-tuple of a matched inbound one.
	MatchTuple
)

var matchNames = []struct {
	m    Match
	name string
}{{MatchSeq, "seq"}, {MatchTSval, "tsval"}, {MatchPayload, "payload"}, {MatchTuple, "tuple"}}

func (m Match) names() []string {
	var out []string
	for _, n := range matchNames {
		if m&n.m != 0 {
			out = append(out, n.name)
		}
	}
	return out
}

func (m Match) String() string {
	if m == 0 {
		return "window"
	}
	return strings.Join(m.names(), "+")
}

func parseMatch(names []string) (Match, bool) {
	var m Match
	for _, s := range names {
		found := false
		for _, n := range matchNames {
			if n.name == s {
				m |= n.m
				found = true
			}
		}
		if !found {
			return 0, false
		}
	}
	return m, true
}

var checksumNames = map[probe.ChecksumStatus]string{
	probe.ChecksumValid:     "valid",
	probe.ChecksumInvalid:   "invalid",
	probe.ChecksumNotFinal:  "not-final",
	probe.ChecksumUnchecked: "unchecked",
}

func checksumName(s probe.ChecksumStatus) string {
	if n, ok := checksumNames[s]; ok {
		return n
	}
	return "unchecked"
}

func parseChecksum(s string) (probe.ChecksumStatus, bool) {
	for st, n := range checksumNames {
		if n == s {
			return st, true
		}
	}
	return 0, false
}
