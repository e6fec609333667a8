package trace

import (
	"context"
	"net/netip"

	"synprobe/internal/reflector"
)

// NewReflectorClient is a Reflector that asks the report port addr of a
// synprobe reflect with c (c.NetNS and c.Source: where this host asks
// from, the address the reflector's allow list names).
func NewReflectorClient(addr netip.AddrPort, c reflector.Client) Reflector {
	return &reflectorClient{addr: addr, c: c}
}

type reflectorClient struct {
	addr netip.AddrPort
	c    reflector.Client
}

func (rc *reflectorClient) String() string { return rc.addr.String() }

// Received asks for the segments q names in one request.
func (rc *reflectorClient) Received(ctx context.Context, q ReflectorQuery) (*ReflectorAnswer, error) {
	req := reflector.Request{Port: q.Port, Within: q.Within, Seq: q.Seq, TSval: q.TSval}
	for _, p := range q.Payloads {
		if len(p) > 0 {
			req.PayloadSHA256 = append(req.PayloadSHA256, reflector.Digest(p))
		}
	}
	a, err := rc.c.Ask(ctx, rc.addr, req)
	if err != nil {
		return nil, err
	}
	out := &ReflectorAnswer{KernelDrops: a.KernelDrops, Overwritten: a.Overwritten, Truncated: a.Truncated}
	for i := range a.Records {
		r := &a.Records[i]
		s := Reflected{Out: r.Direction == reflector.Out, Age: r.Age, PayloadLen: r.PayloadLen, PayloadSHA256: r.PayloadSHA256, Checksum: r.TCPChecksum}
		s.Frame.IP, s.Frame.TCP = r.IP, r.TCP
		s.Frame.IPChecksum, s.Frame.Checksum = r.IPChecksum, r.TCPChecksum
		out.Segments = append(out.Segments, s)
	}
	return out, nil
}
