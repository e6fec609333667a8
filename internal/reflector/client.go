package reflector

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"synprobe/internal/netns"
	"synprobe/probe"
)

// Errors of a query, to test with errors.Is.
var (
	// ErrRefused: the reflector closed the connection without a word, as
	// it does to a client outside its allow list (or when it is busy).
	ErrRefused = errors.New("closed without an answer (is this client's address in the reflector's --allow list?)")
	// ErrProtocol: the answer does not follow the report protocol.
	ErrProtocol = errors.New("report protocol error")
	// ErrRejected: the reflector answered the request with an error line.
	ErrRejected = errors.New("request rejected by the reflector")
)

// Record is one segment the reflector captured.
type Record struct {
	// N numbers the reflector's captures in order (gaps are records that
	// expired, were overwritten, or were not selected).
	N uint64
	// Time is the capture time on the reflector's clock, which need not
	// agree with this host's; Age is how old the record was when the
	// reflector answered.
	Time time.Time
	Age  time.Duration
	// Direction is In for a segment that arrived at the reflector's host,
	// Out for one it sent.
	Direction Direction
	// IP and TCP are the headers as captured, options included; TCP has
	// no Payload. They point into Header.
	IP  probe.IP
	TCP probe.TCP
	// Header is the IP and TCP headers as captured.
	Header []byte
	// IPChecksum and TCPChecksum are the checksums' status as the
	// reflector found them (ChecksumNotFinal: left to an offload on its
	// host, not a fault).
	IPChecksum, TCPChecksum probe.ChecksumStatus
	// PayloadLen and PayloadSHA256 stand for the payload, which the
	// reflector never returns.
	PayloadLen    int
	PayloadSHA256 [32]byte
	// Match says which keys of the request selected the record; 0 when the
	// request had none.
	Match Match
}

// Src and Dst are the segment's endpoints as the reflector saw them.
func (r *Record) Src() netip.AddrPort { return netip.AddrPortFrom(r.IP.Src, r.TCP.SrcPort) }

// Dst is the segment's destination as the reflector saw it.
func (r *Record) Dst() netip.AddrPort { return netip.AddrPortFrom(r.IP.Dst, r.TCP.DstPort) }

// Answer is a reflector's whole answer to a request.
type Answer struct {
	// Port is the port the reflector records.
	Port uint16
	// Records are the selected records, oldest first.
	Records []Record
	// Truncated is set when more records matched than an answer carries
	// (MaxAnswerRecords); Records are then the newest.
	Truncated bool
	// Kept, Capacity and Expiry describe the reflector's store: records
	// older than OldestAge (or Expiry) are gone, so silence about an older
	// segment says nothing.
	Kept      int
	Capacity  int
	Expiry    time.Duration
	OldestAge time.Duration
	// Overwritten counts records lost to the capacity before they
	// expired, KernelDrops frames the reflector's capture lost: when not
	// 0, a missing record may be the reflector's loss, not the path's.
	Overwritten uint64
	KernelDrops uint64
}

// Digest is the digest a reflector keeps of a payload, the key of
// Request.PayloadSHA256.
func Digest(payload []byte) [32]byte { return sha256.Sum256(payload) }

// Client asks a reflector for records.
type Client struct {
	// NetNS is the network namespace to connect from (a descriptor); 0
	// is the current one.
	NetNS int
	// Source, if valid, is the local address to connect from (the one the
	// reflector's allow list names).
	Source netip.Addr
	// Timeout bounds a whole query when ctx has no earlier deadline; 0
	// means 10 seconds.
	Timeout time.Duration
}

// maxAnswerBytes bounds what a client reads: MaxAnswerRecords lines of
// at most ~900 bytes, and the end line.
const maxAnswerBytes = 8 << 20

// Query asks the reflector at addr for the records req selects, from the
// current network namespace.
func Query(ctx context.Context, addr netip.AddrPort, req Request) ([]Record, error) {
	var c Client
	return c.Query(ctx, addr, req)
}

// Query asks the reflector at addr for the records req selects.
func (c *Client) Query(ctx context.Context, addr netip.AddrPort, req Request) ([]Record, error) {
	a, err := c.Ask(ctx, addr, req)
	if err != nil {
		return nil, err
	}
	return a.Records, nil
}

// Ask asks the reflector at addr for the records req selects and returns
// the whole answer. Errors name the reflector and the step: dial, send,
// ErrRefused, ErrRejected (with the reflector's reason), ErrProtocol.
func (c *Client) Ask(ctx context.Context, addr netip.AddrPort, req Request) (*Answer, error) {
	fail := func(op string, err error) (*Answer, error) {
		return nil, fmt.Errorf("reflector %v: %s: %w", addr, op, err)
	}
	msg, err := req.marshal()
	if err != nil {
		return fail("build request", err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	d := net.Dialer{}
	if c.Source.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(c.Source, 0))
	}
	var conn net.Conn
	err = netns.Do(c.NetNS, func() error {
		var err error
		conn, err = d.DialContext(ctx, "tcp", addr.String())
		return err
	})
	if err != nil {
		if isReset(err) {
			// Accepted and reset at once: the reflector refuses this
			// client.
			return fail("dial", ErrRefused)
		}
		return fail("dial", err)
	}
	defer conn.Close()
	// The context ends the exchange too, not only the dial.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if _, err := conn.Write(msg); err != nil {
		if isReset(err) {
			return fail("send request", ErrRefused)
		}
		return fail("send request", err)
	}
	a, err := readAnswer(io.LimitReader(conn, maxAnswerBytes))
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w: %w", err, ctx.Err())
		}
		return fail("read answer", err)
	}
	return a, nil
}

// isReset tells the errors of a connection the peer reset.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// readAnswer reads record lines up to the end line.
func readAnswer(r io.Reader) (*Answer, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	a := &Answer{}
	for n := 0; ; n++ {
		line, err := br.ReadSlice('\n')
		if err != nil {
			if n == 0 && (errors.Is(err, io.EOF) || isReset(err)) && len(line) == 0 {
				return nil, ErrRefused
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				return nil, fmt.Errorf("%w: line %d longer than %d bytes", ErrProtocol, n+1, br.Size())
			}
			if errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("%w: answer ends after %d lines without an end line", ErrProtocol, n)
			}
			return nil, err
		}
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(line, &head); err != nil {
			return nil, fmt.Errorf("%w: line %d is not a JSON object", ErrProtocol, n+1)
		}
		switch head.Type {
		case lineRecord:
			if len(a.Records) >= MaxAnswerRecords {
				return nil, fmt.Errorf("%w: more than %d records", ErrProtocol, MaxAnswerRecords)
			}
			rec, err := decodeRecord(line)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrProtocol, n+1, err)
			}
			a.Records = append(a.Records, rec)
		case lineEnd:
			var e wireEnd
			if err := strictUnmarshal(line, &e); err != nil {
				return nil, fmt.Errorf("%w: line %d: end line: %w", ErrProtocol, n+1, err)
			}
			if e.V != ProtocolVersion {
				return nil, fmt.Errorf("%w: protocol version %d, want %d", ErrProtocol, e.V, ProtocolVersion)
			}
			if e.Records != len(a.Records) {
				return nil, fmt.Errorf("%w: end line counts %d records, %d came", ErrProtocol, e.Records, len(a.Records))
			}
			a.Port, a.Truncated, a.Kept, a.Capacity = e.Port, e.Truncated, e.Kept, e.Capacity
			a.Expiry = time.Duration(e.ExpiryMS) * time.Millisecond
			a.OldestAge = time.Duration(e.OldestAgeUS) * time.Microsecond
			a.Overwritten, a.KernelDrops = e.Overwritten, e.KernelDrops
			return a, nil
		case lineError:
			var e wireError
			if err := json.Unmarshal(line, &e); err != nil {
				return nil, fmt.Errorf("%w: line %d: error line: %w", ErrProtocol, n+1, err)
			}
			return nil, fmt.Errorf("%w: %q", ErrRejected, e.Error)
		default:
			return nil, fmt.Errorf("%w: line %d has type %q", ErrProtocol, n+1, head.Type)
		}
	}
}

func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// decodeRecord decodes a record line, headers through the probe decoders.
func decodeRecord(line []byte) (Record, error) {
	var w wireRecord
	if err := strictUnmarshal(line, &w); err != nil {
		return Record{}, err
	}
	var r Record
	var ok bool
	r.N = w.N
	t, err := time.Parse(time.RFC3339Nano, w.Time)
	if err != nil {
		return Record{}, fmt.Errorf("time %q: %w", w.Time, err)
	}
	r.Time = t
	r.Age = time.Duration(w.AgeUS) * time.Microsecond
	if r.Direction, ok = parseDirection(w.Dir); !ok {
		return Record{}, fmt.Errorf("dir %q: want in or out", w.Dir)
	}
	if r.Header, err = hex.DecodeString(w.Header); err != nil || len(r.Header) > maxHeaderLen {
		return Record{}, fmt.Errorf("header: want at most %d bytes in hex", maxHeaderLen)
	}
	var f probe.Frame
	if err := f.DecodeIP(r.Header); err != nil {
		return Record{}, fmt.Errorf("header: %w", err)
	}
	if !f.Has(probe.LayerIP | probe.LayerTCP) {
		return Record{}, errors.New("header: not IP and TCP")
	}
	r.IP, r.TCP = f.IP, f.TCP
	r.TCP.Payload = nil
	if w.PayloadLen < 0 {
		return Record{}, fmt.Errorf("payload_len %d is negative", w.PayloadLen)
	}
	r.PayloadLen = w.PayloadLen
	d, err := hex.DecodeString(w.PayloadSHA256)
	if err != nil || len(d) != len(r.PayloadSHA256) {
		return Record{}, errors.New("payload_sha256: want 64 hex digits")
	}
	copy(r.PayloadSHA256[:], d)
	if r.IPChecksum, ok = parseChecksum(w.IPChecksum); !ok {
		return Record{}, fmt.Errorf("ip_checksum %q: unknown status", w.IPChecksum)
	}
	if r.TCPChecksum, ok = parseChecksum(w.TCPChecksum); !ok {
		return Record{}, fmt.Errorf("tcp_checksum %q: unknown status", w.TCPChecksum)
	}
	if r.Match, ok = parseMatch(w.Match); !ok {
		return Record{}, fmt.Errorf("match %q: unknown reason", w.Match)
	}
	return r, nil
}
