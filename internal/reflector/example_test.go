package reflector_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"synprobe/internal/reflector"
	"synprobe/probe"
)

// What trace does with a reflector: ask for the SYN it sent (by ISN and
// TSval) and compare what arrived, and the SYN-ACK the target's kernel
// sent, with what it sent and received.
func ExampleClient_Ask() {
	ctx := context.Background()
	c := reflector.Client{} // NetNS, Source: where trace probes from
	a, err := c.Ask(ctx, netip.MustParseAddrPort("10.1.2.3:8081"), reflector.Request{
		Within: 10 * time.Second,
		Seq:    []probe.Seq{0xdeadbeef},
		TSval:  []uint32{1},
		// PayloadSHA256: [][32]byte{reflector.Digest(data)} for a segment with data
	})
	if err != nil {
		fmt.Println(err) // names the reflector and the step; errors.Is ErrRefused, ErrRejected, ErrProtocol
		return
	}
	for _, r := range a.Records {
		mss, _ := r.TCP.MSS()
		fmt.Printf("%v %v > %v ttl %d tos %#x %v mss %d (%v)\n", r.Direction, r.Src(), r.Dst(), r.IP.TTL, r.IP.TOS, r.TCP.Flags, mss, r.Match)
	}
	if a.Overwritten > 0 || a.KernelDrops > 0 {
		fmt.Println("the reflector lost records: a missing segment may be its loss")
	}
}
