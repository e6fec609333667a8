//go:build linux

package sweep

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"synprobe/internal/netns"
	"synprobe/internal/plural"
	"synprobe/internal/siphash"
	"synprobe/probe"
)

const (
	batchMax   = 64
	rxSnap     = 256
	rxBuffer   = 64 << 20
	txBuffer   = 4 << 20
	rxPoll     = 50 * time.Millisecond
	maxProbes  = 1 << 34 // the answered bitmap is 2 GiB at this size
	pathChecks = 16      // targets whose route is checked for the one next hop
	maxOnLink  = 256     // on-link targets resolved one by one
)

// Run sweeps cfg.Targets x cfg.Ports. Results go to cfg.Emit as they come;
// silent probes at the end. It returns when every probe is classified or
// ctx is done (then with ctx's error).
func Run(ctx context.Context, cfg Config) (Stats, error) {
	var st Stats
	if len(cfg.Ports) == 0 {
		return st, errors.New("sweep: no ports")
	}
	if cfg.Rate <= 0 {
		return st, fmt.Errorf("sweep: rate %d is not positive", cfg.Rate)
	}
	if cfg.Emit == nil {
		cfg.Emit = func(Result) {}
	}
	sp, err := newSpace(cfg.Targets, cfg.Ports)
	if err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}
	st.Total = sp.total()
	if st.Total == 0 {
		return st, nil
	}
	if st.Total > maxProbes {
		return st, fmt.Errorf("sweep: %d probes are more than the %d one run keeps track of; split the targets", st.Total, uint64(maxProbes))
	}
	path, onLink, err := checkPath(ctx, cfg, sp)
	if err != nil {
		return st, err
	}
	var macs map[uint32][6]byte
	if onLink {
		macs = resolveOnLink(ctx, cfg, sp)
		if err := ctx.Err(); err != nil {
			return st, err
		}
		st.Notes = append(st.Notes, fmt.Sprintf("the targets are on the local link of %s: %d of %d answered ARP; the others are reported silent without a SYN (attempt 0)", path.Interface, len(macs), sp.nAddrs))
	}
	st.Interface, st.NextHopMAC = path.Interface, path.NextHopMAC.String()
	if cfg.Key == (siphash.Key{}) {
		var b [16]byte
		rand.Read(b[:])
		cfg.Key = siphash.KeyFrom(b)
	}

	ports, err := probe.NewPortAllocator(cfg.NetNS)
	if err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}
	sport, err := ports.Allocate()
	if err != nil {
		return st, fmt.Errorf("sweep: choose a source port: %w", err)
	}
	defer ports.Release(sport)
	st.SourcePort = sport
	guard, err := probe.InstallGuard(cfg.NetNS)
	if err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}
	defer guard.Close()
	// Long enough for the whole run at the rate, and renewed each pass.
	protect := func(probes uint64) error {
		ttl := time.Duration(float64(probes)/float64(cfg.Rate)*float64(time.Second)) + cfg.Wait + time.Minute
		return guard.Protect(sport, ttl)
	}
	if err := protect(st.Total); err != nil {
		return st, fmt.Errorf("sweep: %w", err)
	}

	var txfd, rxfd int
	err = netns.Do(cfg.NetNS, func() error {
		var err error
		if txfd, err = openTx(path.IfIndex); err != nil {
			return err
		}
		if rxfd, err = openRx(path.IfIndex, sport); err != nil {
			unix.Close(txfd)
		}
		return err
	})
	if err != nil {
		return st, fmt.Errorf("sweep on %s: %w", path.Interface, err)
	}
	defer unix.Close(txfd)
	defer unix.Close(rxfd)
	linkBefore := linkDrops(cfg.NetNS, path.Interface)

	src := u32(path.Source)
	var tsval [4]byte
	rand.Read(tsval[:])
	tmpl := newTemplate(path.NextHopMAC, path.LocalMAC, src, sport, binary.BigEndian.Uint32(tsval[:]))
	s := &sweeper{
		cfg:   cfg,
		sp:    sp,
		tmpl:  tmpl,
		cls:   &classifier{key: cfg.Key, src: src, sport: sport, space: sp, retries: cfg.Retries},
		done:  make([]uint64, (st.Total+63)/64),
		txfd:  txfd,
		rxfd:  rxfd,
		total: st.Total,
		macs:  macs,

		ifName:     path.Interface,
		linkBefore: linkBefore,
	}
	if macs != nil {
		// Unresolved targets are not probed: their bits are set now, and
		// they are reported silent at the end.
		for i := range st.Total {
			if a, _ := sp.probe(i); !hasMAC(macs, a) {
				s.done[i/64] |= 1 << (i % 64)
				s.unresolved = append(s.unresolved, i)
			}
		}
		s.answered.Store(uint64(len(s.unresolved)))
	}
	s.pass.Store(1)

	rxCtx, stopRx := context.WithCancel(context.Background())
	var rxWG sync.WaitGroup
	rxWG.Add(1)
	go func() { defer rxWG.Done(); s.receive(rxCtx) }()
	stopProgress := s.startProgress()

	var seed [8]byte
	rand.Read(seed[:])
	seedv := binary.LittleEndian.Uint64(seed[:])
	start := time.Now()
	s.start.Store(start.UnixNano())
	var runErr error
	for pass := 1; pass <= cfg.Retries+1; pass++ {
		s.pass.Store(int32(pass))
		left := st.Total - s.answered.Load()
		if left == 0 {
			break
		}
		if pass > 1 {
			if err := protect(left); err != nil {
				runErr = fmt.Errorf("sweep: %w", err)
				break
			}
		}
		passStart := time.Now()
		err := s.send(ctx, newPermutation(st.Total, seedv), pass > 1)
		st.SendTime += time.Since(passStart)
		if err != nil {
			runErr = err
			break
		}
		if !s.waitReplies(ctx, cfg.Wait) {
			runErr = ctx.Err()
			break
		}
	}
	stopRx()
	rxWG.Wait()
	s.finished.Store(true)
	stopProgress()

	st.Sent = s.sent.Load()
	st.Invalid, st.Duplicates = s.invalid.Load(), s.dups.Load()
	st.Open, st.Closed, st.Filtered = s.counts[0].Load(), s.counts[1].Load(), s.counts[2].Load()
	st.Retried = s.retried.Load()
	if ts, err := unix.GetsockoptTpacketStats(rxfd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		s.rxDrops.Add(uint64(ts.Drops))
	}
	st.RxDrops = s.rxDrops.Load()
	linkAfter := linkDrops(cfg.NetNS, path.Interface)
	st.LinkTxDrops, st.LinkRxDrops = linkAfter[0]-linkBefore[0], linkAfter[1]-linkBefore[1]
	if n, err := guard.Dropped(); err == nil && n > 0 {
		st.Notes = append(st.Notes, fmt.Sprintf("the RST guard dropped %s of the local kernel", plural.N(n, "RST", "RSTs")))
	}
	if s.txRetries.Load() > 0 {
		st.Notes = append(st.Notes, fmt.Sprintf("the interface refused %s (ENOBUFS); sent again", plural.N(s.txRetries.Load(), "batch", "batches")))
	}
	if runErr != nil {
		st.Duration = time.Since(start)
		return st, runErr
	}
	// Whatever is left is silent.
	attempts := cfg.Retries + 1
	for i := uint64(0); i < st.Total; i++ {
		if s.done[i/64]&(1<<(i%64)) != 0 {
			continue
		}
		a, p := sp.probe(i)
		st.Silent++
		cfg.Emit(Result{Addr: addrOf(a), Port: p, State: Silent, Attempt: attempts})
	}
	for _, i := range s.unresolved {
		a, p := sp.probe(i)
		st.Silent++
		cfg.Emit(Result{Addr: addrOf(a), Port: p, State: Silent, Attempt: 0})
	}
	st.Duration = time.Since(start)
	return st, nil
}

func hasMAC(m map[uint32][6]byte, a uint32) bool { _, ok := m[a]; return ok }

// checkPath resolves the path to the first target and checks that the
// others (a sample of them) go out through the same interface to the same
// next hop: one MAC address serves the whole sweep. Targets on the local
// link are each their own next hop: onLink says so, and they must all be
// on the same link.
func checkPath(ctx context.Context, cfg Config, sp *space) (first probe.Path, onLink bool, err error) {
	opts := probe.PathOptions{Interface: cfg.Interface, Source: cfg.Source, NetNS: cfg.NetNS}
	var lastErr error
	step := max(len(sp.prefixes)/pathChecks, 1)
	for k := 0; k < len(sp.prefixes); k += step {
		for _, a := range []uint32{sp.first[k], sp.first[k] + uint32(1<<(32-sp.prefixes[k].Bits())-1)} {
			target := addrOf(a)
			p, err := probe.ResolvePath(ctx, target, onLinkOpts(opts))
			if errors.Is(err, probe.ErrNeighborUnresolved) {
				// An on-link address with no host: the others tell.
				lastErr = err
				continue
			}
			if err != nil {
				return p, false, fmt.Errorf("sweep: %w", err)
			}
			direct := p.NextHop == target
			if !first.Source.IsValid() {
				first, onLink = p, direct
				continue
			}
			if direct != onLink || p.Interface != first.Interface || p.Source != first.Source || (!onLink && p.NextHop != first.NextHop) {
				return p, false, fmt.Errorf("sweep: %s goes through %s via %s from %s, but %s through %s via %s from %s: sweep one route at a time",
					target, p.Interface, p.NextHop, p.Source, addrOf(sp.first[0]), first.Interface, first.NextHop, first.Source)
			}
		}
	}
	if !first.Source.IsValid() {
		return first, false, fmt.Errorf("sweep: %w", lastErr)
	}
	if !first.Source.Is4() {
		return first, false, fmt.Errorf("sweep: source %s is not IPv4", first.Source)
	}
	if onLink && sp.nAddrs > maxOnLink {
		return first, false, fmt.Errorf("sweep: %s is on the local link of %s: on-link targets are resolved one by one (ARP), at most %d of them, not %d; route larger sets through a gateway",
			addrOf(sp.first[0]), first.Interface, maxOnLink, sp.nAddrs)
	}
	return first, onLink, nil
}

// onLinkOpts bounds neighbour resolution for the path checks: an on-link
// target that does not answer ARP is found out by resolveOnLink.
func onLinkOpts(o probe.PathOptions) probe.PathOptions {
	o.Timeout = time.Second
	return o
}

// resolveOnLink finds the MAC address of every target on the local link,
// a few at a time. Targets that do not answer ARP are missing from the
// map: they are silent without a SYN.
func resolveOnLink(ctx context.Context, cfg Config, sp *space) map[uint32][6]byte {
	opts := onLinkOpts(probe.PathOptions{Interface: cfg.Interface, Source: cfg.Source, NetNS: cfg.NetNS})
	macs := map[uint32][6]byte{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for k, p := range sp.prefixes {
		for off := uint32(0); off < 1<<(32-p.Bits()); off++ {
			a := sp.first[k] + off
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				path, err := probe.ResolvePath(ctx, addrOf(a), opts)
				if err != nil || path.NextHop != addrOf(a) {
					return
				}
				mu.Lock()
				macs[a] = path.NextHopMAC
				mu.Unlock()
			}()
		}
	}
	wg.Wait()
	return macs
}

func openTx(ifindex int) (int, error) {
	// Protocol 0: this socket only sends, nothing is queued on it.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open send socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifindex}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind send socket: %w", err)
	}
	// Straight to the driver: a sweep's SYNs need no queueing discipline,
	// and skipping it is most of the way to the raw TX ceiling.
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("set PACKET_QDISC_BYPASS: %w", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, txBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, txBuffer)
	}
	return fd, nil
}

func openRx(ifindex int, sport uint16) (int, error) {
	// Protocol 0 until the filter is on: no frame queues unfiltered.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("open receive socket: %w", err)
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", op, err)
	}
	raw, err := bpf.Assemble(replyFilter(sport))
	if err != nil {
		return fail("assemble reply filter", err)
	}
	prog := unix.SockFprog{Len: uint16(len(raw)), Filter: (*unix.SockFilter)(unsafe.Pointer(&raw[0]))}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &prog); err != nil {
		return fail("attach reply filter", err)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rxBuffer) != nil {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rxBuffer)
	}
	tv := unix.NsecToTimeval(rxPoll.Nanoseconds())
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		return fail("set receive timeout", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}); err != nil {
		return fail("bind receive socket", err)
	}
	return fd, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// replyFilter passes IPv4 frames that may answer the sweep: TCP to sport
// with RST or SYN and ACK set, and ICMP destination unreachable quoting a
// TCP segment from sport (its quoted IP header without options, as the
// sweep sends them). Fragments are dropped.
func replyFilter(sport uint16) []bpf.Instruction {
	p := uint32(sport)
	return []bpf.Instruction{
		/* 0 */ bpf.LoadAbsolute{Off: 12, Size: 2},
		/* 1 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0800, SkipFalse: 18},
		/* 2 */ bpf.LoadAbsolute{Off: 20, Size: 2},
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x1fff, SkipTrue: 16},
		/* 4 */ bpf.LoadAbsolute{Off: 23, Size: 1},
		/* 5 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 6, SkipFalse: 7},
		/* 6 */ bpf.LoadMemShift{Off: 14},
		/* 7 */ bpf.LoadIndirect{Off: 16, Size: 2},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: p, SkipFalse: 11},
		/* 9 */ bpf.LoadIndirect{Off: 27, Size: 1},
		/* 10 */ bpf.JumpIf{Cond: bpf.JumpBitsSet, Val: 0x04, SkipTrue: 8},
		/* 11 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: 0x12},
		/* 12 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x12, SkipTrue: 6, SkipFalse: 7},
		/* 13 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 1, SkipFalse: 6},
		/* 14 */ bpf.LoadMemShift{Off: 14},
		/* 15 */ bpf.LoadIndirect{Off: 14, Size: 1},
		/* 16 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 3, SkipFalse: 3},
		/* 17 */ bpf.LoadIndirect{Off: 42, Size: 2},
		/* 18 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: p, SkipFalse: 1},
		/* 19 */ bpf.RetConstant{Val: rxSnap},
		/* 20 */ bpf.RetConstant{Val: 0},
	}
}

// linkDrops reads the interface's tx and rx drop counters (zeros when it
// cannot).
func linkDrops(ns int, ifName string) [2]uint64 {
	var d [2]uint64
	netns.Do(ns, func() error {
		l, err := netlink.LinkByName(ifName)
		if err != nil || l.Attrs().Statistics == nil {
			return err
		}
		d[0], d[1] = l.Attrs().Statistics.TxDropped, l.Attrs().Statistics.RxDropped
		return nil
	})
	return d
}

type sweeper struct {
	cfg  Config
	sp   *space
	tmpl *template
	cls  *classifier
	done []uint64 // one bit per probe: answered
	// macs are the targets' MAC addresses when they are on the local
	// link (nil: all go to the template's next hop); unresolved are the
	// probes of targets that did not answer ARP.
	macs       map[uint32][6]byte
	unresolved []uint64
	txfd       int
	rxfd       int
	total      uint64
	// ifName and linkBefore give the interface's drops so far.
	ifName     string
	linkBefore [2]uint64

	pass                    atomic.Int32
	start                   atomic.Int64 // unix nanoseconds of the first SYN
	sent, answered, retried atomic.Uint64
	invalid, dups           atomic.Uint64
	rxDrops, txRetries      atomic.Uint64
	counts                  [3]atomic.Uint64 // open, closed, filtered
	finished                atomic.Bool
}

func (s *sweeper) isDone(i uint64) bool {
	return atomic.LoadUint64(&s.done[i/64])&(1<<(i%64)) != 0
}

// send sends one pass: every probe, or on a retry those not answered, at
// the configured rate, in batches of up to batchMax frames per sendmmsg.
func (s *sweeper) send(ctx context.Context, perm *permutation, retry bool) error {
	batch := min(max(s.cfg.Rate/2000, 1), batchMax)
	frames := make([]byte, batchMax*frameLen)
	for k := range batchMax {
		copy(frames[k*frameLen:], s.tmpl.frame[:])
	}
	var iov [batchMax]unix.Iovec
	var msgs [batchMax]unix.Mmsghdr
	for k := range batchMax {
		iov[k].Base = &frames[k*frameLen]
		iov[k].SetLen(frameLen)
		msgs[k].Hdr.Iov = &iov[k]
		msgs[k].Hdr.SetIovlen(1)
	}
	// The SYN of attempt k carries the keyed ISN + k-1 (classifier.attempt).
	bump := uint32(s.pass.Load() - 1)
	interval := float64(time.Second) / float64(s.cfg.Rate)
	begin := time.Now()
	var n uint64 // sent in this pass
	for {
		k := 0
		for k < batch {
			i, ok := perm.next()
			if !ok {
				break
			}
			if (retry || s.macs != nil) && s.isDone(i) {
				continue
			}
			a, p := s.sp.probe(i)
			if s.macs != nil {
				mac := s.macs[a]
				copy(frames[k*frameLen:], mac[:])
			}
			s.tmpl.patch(frames[k*frameLen:(k+1)*frameLen], a, p, ISN(s.cls.key, s.cls.src, a, s.cls.sport, p)+bump)
			k++
		}
		if k == 0 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		// Pace: the batch leaves when its first frame is due.
		if d := time.Duration(float64(n)*interval) - time.Since(begin); d > 0 {
			time.Sleep(d)
		}
		if err := s.sendmmsg(msgs[:k]); err != nil {
			return err
		}
		n += uint64(k)
		s.sent.Add(uint64(k))
	}
}

// txStall is how long sendmmsg may keep refusing frames (ENOBUFS) before
// the sweep gives up: a queue that stays full is a link that is down.
const txStall = 2 * time.Second

func (s *sweeper) sendmmsg(msgs []unix.Mmsghdr) error {
	var stalled time.Time
	for len(msgs) > 0 {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.txfd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), 0, 0, 0)
		switch errno {
		case 0:
			msgs = msgs[r:]
			stalled = time.Time{}
		case unix.EINTR:
		case unix.ENOBUFS, unix.EAGAIN:
			// The device's queue is full: give it a moment.
			if stalled.IsZero() {
				stalled = time.Now()
			} else if time.Since(stalled) > txStall {
				return fmt.Errorf("send SYNs (sendmmsg): the interface refused frames for %v: %w", txStall, errno)
			}
			s.txRetries.Add(1)
			time.Sleep(100 * time.Microsecond)
		default:
			return fmt.Errorf("send SYNs (sendmmsg): %w", errno)
		}
	}
	return nil
}

// waitReplies waits for the replies of a pass: wait after the last SYN,
// or less if every probe is answered. It reports false if ctx ended.
func (s *sweeper) waitReplies(ctx context.Context, wait time.Duration) bool {
	deadline := time.Now().Add(wait)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) && s.answered.Load() < s.total {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

// receive reads replies until ctx is cancelled, classifies them and emits
// the results.
func (s *sweeper) receive(ctx context.Context) {
	bufs := make([]byte, batchMax*rxSnap)
	var iov [batchMax]unix.Iovec
	var msgs [batchMax]unix.Mmsghdr
	for k := range batchMax {
		iov[k].Base = &bufs[k*rxSnap]
		iov[k].SetLen(rxSnap)
		msgs[k].Hdr.Iov = &iov[k]
		msgs[k].Hdr.SetIovlen(1)
	}
	for ctx.Err() == nil {
		r, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(s.rxfd), uintptr(unsafe.Pointer(&msgs[0])), batchMax, unix.MSG_WAITFORONE, 0, 0)
		if errno != 0 {
			if errno == unix.EAGAIN || errno == unix.EINTR {
				continue
			}
			return // the socket is gone
		}
		for k := range int(r) {
			n := min(int(msgs[k].Len), rxSnap)
			s.handle(bufs[k*rxSnap : k*rxSnap+n])
		}
	}
}

func (s *sweeper) handle(f []byte) {
	v, i, r := s.cls.classify(f)
	switch v {
	case notOurs:
		return
	case invalid:
		s.invalid.Add(1)
		return
	}
	bit := uint64(1) << (i % 64)
	if atomic.OrUint64(&s.done[i/64], bit)&bit != 0 {
		s.dups.Add(1)
		return
	}
	s.answered.Add(1)
	if r.Attempt > 1 {
		s.retried.Add(1)
	}
	switch r.State {
	case Open:
		s.counts[0].Add(1)
	case Closed:
		s.counts[1].Add(1)
	case Filtered:
		s.counts[2].Add(1)
	}
	s.cfg.Emit(r)
}

// startProgress calls cfg.Progress every ProgressEvery until the returned
// function is called, which makes the last call.
func (s *sweeper) startProgress() func() {
	if s.cfg.Progress == nil {
		return func() {}
	}
	every := s.cfg.ProgressEvery
	if every <= 0 {
		every = time.Second
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				s.cfg.Progress(s.progress())
				return
			case <-t.C:
				s.cfg.Progress(s.progress())
			}
		}
	}()
	return func() { close(stop); wg.Wait() }
}

func (s *sweeper) progress() Progress {
	p := Progress{Total: s.total, Done: s.answered.Load(), Sent: s.sent.Load(), Pass: int(s.pass.Load()), Finished: s.finished.Load()}
	if st := s.start.Load(); st != 0 {
		p.Elapsed = time.Since(time.Unix(0, st))
	}
	if p.Elapsed > 0 {
		p.Rate = float64(p.Sent) / p.Elapsed.Seconds()
	}
	if ts, err := unix.GetsockoptTpacketStats(s.rxfd, unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
		s.rxDrops.Add(uint64(ts.Drops)) // the kernel resets them on every read
	}
	p.RxDrops = s.rxDrops.Load()
	if d := linkDrops(s.cfg.NetNS, s.ifName); d[0] >= s.linkBefore[0] && d[1] >= s.linkBefore[1] {
		p.LinkTxDrops, p.LinkRxDrops = d[0]-s.linkBefore[0], d[1]-s.linkBefore[1]
	}
	if p.Pass == 1 && p.Sent < p.Total {
		p.ETA = time.Duration(float64(p.Total-p.Sent)/float64(s.cfg.Rate)*float64(time.Second)) + s.cfg.Wait
	}
	return p
}
