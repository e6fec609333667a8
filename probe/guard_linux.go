package probe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

const (
	// guardTablePrefix starts every guard table's name; the rest is the
	// owning process's pid, so that stale tables can be told from live ones.
	guardTablePrefix = "synprobe_"
	guardSetName     = "ports"
	// The flow sets hold (target host, source port) pairs (see
	// Guard.ProtectFlow), one set per IP version.
	guardFlowSet4  = "flows4"
	guardFlowSet6  = "flows6"
	guardChainName = "output"

	// tableFlagOwner is NFT_TABLE_F_OWNER (Linux 5.12): the table belongs to
	// the netlink socket that created it and dies with it. golang.org/x/sys
	// does not name it.
	tableFlagOwner = 0x2

	// tcpFlagsOffset is the offset of the TCP flags byte; tcpFlagRST its
	// RST bit.
	tcpFlagsOffset = 13
	tcpFlagRST     = 0x04
)

// guardSeq numbers a process's guards after the first, so that one process
// may hold guards in several namespaces, or several in one.
var guardSeq atomic.Uint32

// guardSys is the nftables side of a Guard. All its methods run under
// Guard.mu: they share one netlink socket, which must see one batch at a time.
type guardSys struct {
	conn  *nftables.Conn
	nl    *netlink.Conn // conn's lasting socket, for the message the library cannot build
	table *nftables.Table
	set   *nftables.Set
	flows [2]*nftables.Set // IPv4, IPv6
	chain *nftables.Chain
}

func installGuard(netns int) (*Guard, error) {
	g, err := newGuard(netns)
	if err != nil {
		return nil, fmt.Errorf("install RST guard: %w: %w", ErrGuardUnavailable, err)
	}
	return g, nil
}

func newGuard(netns int) (*Guard, error) {
	s := &guardSys{}
	// The table must be created on the socket that is meant to own it, and
	// nftables v0.3.0 does not send table flags: keep hold of the lasting
	// socket to create the table by hand.
	grab := func(c *netlink.Conn) error {
		s.nl = c
		return nil
	}
	conn, err := nftables.New(nftables.AsLasting(), nftables.WithNetNSFd(netns), nftables.WithSockOptions(grab))
	if err != nil {
		return nil, fmt.Errorf("open nftables netlink socket: %w", err)
	}
	s.conn = conn
	if s.nl == nil {
		conn.CloseLasting()
		return nil, errors.New("open nftables netlink socket: no lasting socket")
	}
	sweepStaleGuards(conn)

	name, owned, err := s.createTable()
	if err != nil {
		conn.CloseLasting()
		return nil, err
	}
	s.table = &nftables.Table{Name: name, Family: nftables.TableFamilyINet}
	if err := s.populate(); err != nil {
		s.close()
		return nil, fmt.Errorf("fill table %s: %w", name, err)
	}
	return &Guard{name: name, owned: owned, sys: s}, nil
}

// createTable creates a fresh table, owned by the socket if the kernel allows.
// A name already taken (another guard of this process, or a stale table of an
// earlier process with the same pid) moves on to the next name.
func (s *guardSys) createTable() (name string, owned bool, err error) {
	owned = true
	for range 64 {
		name = guardTableName(os.Getpid(), guardSeq.Add(1)-1)
		flags := uint32(0)
		if owned {
			flags = tableFlagOwner
		}
		err = s.newTable(name, flags)
		switch {
		case err == nil:
			return name, owned, nil
		case errors.Is(err, unix.EEXIST):
			continue
		case owned && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)):
			// A kernel older than 5.12: no owner flag. Stale tables are then
			// swept at install time instead.
			owned = false
			if err = s.newTable(name, 0); err == nil {
				return name, false, nil
			}
			if errors.Is(err, unix.EEXIST) {
				continue
			}
		}
		return "", false, fmt.Errorf("create table %s: %w", name, err)
	}
	return "", false, fmt.Errorf("create table %s: every name is taken: %w", name, err)
}

// newTable sends NFT_MSG_NEWTABLE with flags in a batch of its own and waits
// for the kernel's answer.
func (s *guardSys) newTable(name string, flags uint32) error {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.String(unix.NFTA_TABLE_NAME, name)
	ae.Uint32(unix.NFTA_TABLE_FLAGS, flags)
	attrs, err := ae.Encode()
	if err != nil {
		return err
	}
	// nfgenmsg: family, version, resource id (big endian). The batch
	// messages name the subsystem in the resource id.
	batchHdr := []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, unix.NFNL_SUBSYS_NFTABLES}
	tableHdr := []byte{unix.NFPROTO_INET, unix.NFNETLINK_V0, 0, 0}
	msgs := []netlink.Message{
		{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_BEGIN), Flags: netlink.Request},
			Data:   batchHdr,
		},
		{
			Header: netlink.Header{
				Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_NEWTABLE),
				Flags: netlink.Request | netlink.Acknowledge | netlink.Create | netlink.Excl,
			},
			Data: append(tableHdr, attrs...),
		},
		{
			Header: netlink.Header{Type: netlink.HeaderType(unix.NFNL_MSG_BATCH_END), Flags: netlink.Request},
			Data:   batchHdr,
		},
	}
	if _, err := s.nl.SendMessages(msgs); err != nil {
		return err
	}
	// One answer: the ack of NEWTABLE, or the error of whichever message
	// failed. Receive turns an error answer into an error.
	_, err = s.nl.Receive()
	return err
}

// populate adds the port set and the dropping rule to the new table.
func (s *guardSys) populate() error {
	s.set = &nftables.Set{
		Table:        s.table,
		ID:           1, // names the set inside this batch only
		Name:         guardSetName,
		KeyType:      nftables.TypeInetService,
		KeyByteOrder: binaryutil.BigEndian,
		HasTimeout:   true,
	}
	if err := s.conn.AddSet(s.set, nil); err != nil {
		return fmt.Errorf("add set %s: %w", guardSetName, err)
	}
	accept := nftables.ChainPolicyAccept
	s.chain = s.conn.AddChain(&nftables.Chain{
		Name:     guardChainName,
		Table:    s.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &accept,
	})
	// meta l4proto tcp tcp flags & rst != 0 tcp sport @ports counter drop
	s.conn.AddRule(&nftables.Rule{
		Table: s.table,
		Chain: s.chain,
		Exprs: append(tcpRST(),
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Lookup{SourceRegister: 1, SetName: s.set.Name, SetID: s.set.ID},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		),
	})
	// The same for (target host, source port) pairs: meta nfproto ipv4
	// tcp flags & rst != 0 ip daddr . tcp sport @flows4 counter drop, and
	// ip6 daddr for IPv6. A concatenated key fills whole 32-bit registers:
	// the address from register 1, the port from the one after it.
	for i, f := range []struct {
		name     string
		proto    byte
		addr     nftables.SetDatatype
		off, len uint32
		portReg  uint32
	}{
		{guardFlowSet4, unix.NFPROTO_IPV4, nftables.TypeIPAddr, 16, 4, 9},   // NFT_REG32_01
		{guardFlowSet6, unix.NFPROTO_IPV6, nftables.TypeIP6Addr, 24, 16, 2}, // NFT_REG_2
	} {
		set := &nftables.Set{
			Table:      s.table,
			ID:         uint32(2 + i),
			Name:       f.name,
			KeyType:    nftables.MustConcatSetType(f.addr, nftables.TypeInetService),
			HasTimeout: true,
		}
		if err := s.conn.AddSet(set, nil); err != nil {
			return fmt.Errorf("add set %s: %w", f.name, err)
		}
		s.flows[i] = set
		s.conn.AddRule(&nftables.Rule{
			Table: s.table,
			Chain: s.chain,
			Exprs: append(append([]expr.Any{
				&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: 1},
				&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{f.proto}},
			}, tcpRST()...),
				&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: f.off, Len: f.len},
				&expr.Payload{DestRegister: f.portReg, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
				&expr.Lookup{SourceRegister: 1, SetName: set.Name, SetID: set.ID},
				&expr.Counter{},
				&expr.Verdict{Kind: expr.VerdictDrop},
			),
		})
	}
	return s.conn.Flush()
}

// tcpRST matches a TCP segment with RST set: meta l4proto tcp tcp flags &
// rst != 0, in register 1.
func tcpRST() []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: tcpFlagsOffset, Len: 1},
		&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{tcpFlagRST}, Xor: []byte{0}},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
	}
}

// flowKey is the key of (remote, port) in its flow set: the address, then
// the port padded to a 32-bit register.
func (s *guardSys) flowKey(remote netip.Addr, port uint16) (*nftables.Set, []byte) {
	set := s.flows[0]
	if remote.Is6() {
		set = s.flows[1]
	}
	key := append(remote.AsSlice(), byte(port>>8), byte(port), 0, 0)
	return set, key
}

func (s *guardSys) protectFlow(remote netip.Addr, port uint16, ttl time.Duration) error {
	set, key := s.flowKey(remote, port)
	if err := s.conn.SetAddElements(set, []nftables.SetElement{{Key: key, Timeout: ttl}}); err != nil {
		return err
	}
	return s.conn.Flush()
}

// unprotectFlows deletes the pairs of remote and ports in one batch; a
// batch refused because one of them is gone already (ENOENT: its ttl ran
// out) is done again one pair at a time.
func (s *guardSys) unprotectFlows(remote netip.Addr, ports []uint16) error {
	var set *nftables.Set
	els := make([]nftables.SetElement, 0, len(ports))
	for _, p := range ports {
		var key []byte
		set, key = s.flowKey(remote, p)
		els = append(els, nftables.SetElement{Key: key})
	}
	if len(els) == 0 {
		return nil
	}
	if err := s.conn.SetDeleteElements(set, els); err != nil {
		return err
	}
	err := s.conn.Flush()
	if err == nil || !errors.Is(err, unix.ENOENT) {
		return err
	}
	if len(els) == 1 {
		return nil
	}
	for _, el := range els {
		if err := s.conn.SetDeleteElements(set, []nftables.SetElement{el}); err != nil {
			return err
		}
		if err := s.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
			return err
		}
	}
	return nil
}

func (s *guardSys) protect(port uint16, ttl time.Duration) error {
	el := nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, port), Timeout: ttl}
	if err := s.conn.SetAddElements(s.set, []nftables.SetElement{el}); err != nil {
		return err
	}
	return s.conn.Flush()
}

func (s *guardSys) unprotect(port uint16) error {
	el := nftables.SetElement{Key: binary.BigEndian.AppendUint16(nil, port)}
	if err := s.conn.SetDeleteElements(s.set, []nftables.SetElement{el}); err != nil {
		return err
	}
	if err := s.conn.Flush(); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

func (s *guardSys) dropped() (uint64, error) {
	rules, err := s.conn.GetRules(s.table, s.chain)
	if err != nil {
		return 0, err
	}
	var n uint64
	found := false
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				n += c.Packets
				found = true
			}
		}
	}
	if !found {
		return 0, errors.New("no counter in the guard's rules")
	}
	return n, nil
}

// close deletes the table, then closes the socket (which alone would delete
// an owned table).
func (s *guardSys) close() error {
	s.conn.DelTable(s.table)
	err := s.conn.Flush()
	if cerr := s.conn.CloseLasting(); cerr != nil {
		err = errors.Join(err, fmt.Errorf("close nftables netlink socket: %w", cerr))
	}
	return err
}

func guardTableName(pid int, seq uint32) string {
	if seq == 0 {
		return guardTablePrefix + strconv.Itoa(pid)
	}
	return guardTablePrefix + strconv.Itoa(pid) + "_" + strconv.FormatUint(uint64(seq), 10)
}

// guardTablePID returns the pid in a guard table's name.
func guardTablePID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, guardTablePrefix)
	if !ok {
		return 0, false
	}
	rest, _, _ = strings.Cut(rest, "_")
	pid, err := strconv.Atoi(rest)
	if err != nil || pid <= 0 || strconv.Itoa(pid) != rest {
		return 0, false
	}
	return pid, true
}

// sweepStaleGuards deletes guard tables without an owner whose process is
// gone: what a crash leaves on a kernel that refused the owner flag. Owned
// tables die with their socket and are never touched. Pids are read in this
// process's pid namespace; a guard made from another pid namespace that
// shares this network namespace could look dead. Failures are ignored: a
// stale table only holds elements that time out.
func sweepStaleGuards(conn *nftables.Conn) {
	tables, err := conn.ListTablesOfFamily(nftables.TableFamilyINet)
	if err != nil {
		return
	}
	for _, t := range tables {
		pid, ok := guardTablePID(t.Name)
		if !ok || tableFlags(t)&tableFlagOwner != 0 || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		conn.DelTable(t)
		_ = conn.Flush() // one batch each: a table another sweeper took first fails alone
	}
}

// tableFlags returns a listed table's flags. nftables v0.3.0 decodes them in
// host byte order; netlink sends them big endian.
func tableFlags(t *nftables.Table) uint32 {
	return binary.BigEndian.Uint32(binary.NativeEndian.AppendUint32(nil, t.Flags))
}

func processAlive(pid int) bool {
	err := unix.Kill(pid, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}
