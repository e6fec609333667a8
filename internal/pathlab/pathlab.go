package pathlab

import (
	"fmt"
	"net/netip"
	"strings"
)

// Box is a middlebox the bed can put on one of its routers.
type Box string

// The boxes; doc.go says what each does and what the server sees.
const (
	BoxNone               Box = "none"
	BoxMSSClamp           Box = "mss-clamp"
	BoxStripTS            Box = "strip-ts"
	BoxStripSACK          Box = "strip-sack"
	BoxStripWS            Box = "strip-ws"
	BoxStripTSData        Box = "strip-ts-data"
	BoxNAT                Box = "nat"
	BoxECNClear           Box = "ecn-clear"
	BoxDSCPRewrite        Box = "dscp-rewrite"
	BoxProxy              Box = "proxy"
	BoxSYNProxy           Box = "synproxy"
	BoxDropSYNData        Box = "drop-syndata"
	BoxDropUnknownOptions Box = "drop-unknown-options"
	BoxDropBadSum         Box = "drop-badsum"
	BoxDropOutOfState     Box = "drop-out-of-state"
)

// boxes lists every box but none, in the order of the documentation.
var boxes = []Box{
	BoxMSSClamp, BoxStripTS, BoxStripSACK, BoxStripWS, BoxStripTSData, BoxNAT,
	BoxECNClear, BoxDSCPRewrite, BoxProxy, BoxSYNProxy, BoxDropSYNData,
	BoxDropUnknownOptions, BoxDropBadSum, BoxDropOutOfState,
}

// Boxes lists every box but BoxNone.
func Boxes() []Box { return append([]Box(nil), boxes...) }

// ParseBox returns the box named s ("none" included).
func ParseBox(s string) (Box, error) {
	b := Box(s)
	if b == BoxNone {
		return b, nil
	}
	for _, k := range boxes {
		if k == b {
			return b, nil
		}
	}
	names := []string{string(BoxNone)}
	for _, k := range boxes {
		names = append(names, string(k))
	}
	return "", fmt.Errorf("no box %q (known: %s)", s, strings.Join(names, ", "))
}

// Position is the router a box sits on.
type Position int

const (
	// First is router 1, hop 1: router 2 quotes what the box changed.
	First Position = iota
	// Last is router 2, hop 2, the last before the server: no router after
	// it quotes anything, so the box is blind to a TTL walk.
	Last
)

func (p Position) String() string {
	switch p {
	case First:
		return "first"
	case Last:
		return "last"
	}
	return fmt.Sprintf("position %d", int(p))
}

// Node is one of the bed's four namespaces.
type Node int

const (
	Client Node = iota
	Router1
	Router2
	Server
)

func (n Node) String() string {
	switch n {
	case Client:
		return "client"
	case Router1:
		return "r1"
	case Router2:
		return "r2"
	case Server:
		return "server"
	}
	return fmt.Sprintf("node %d", int(n))
}

// Config says what bed to make.
type Config struct {
	// IPv6 also addresses and routes IPv6 (the Target6 and Hops6 of the
	// bed); without it those are zero.
	IPv6 bool
	// Port is the server application's port; 0 is DefaultPort.
	Port uint16
}

// Ports of every bed.
const (
	DefaultPort = 8080
	// ClosedPort has no listener; the proxy and synproxy boxes intercept
	// it as they intercept the server port.
	ClosedPort = 8081
	// AltPort has no listener either, and no box intercepts it: its RST
	// always comes from the server's kernel.
	AltPort = 8082
	// ProxyPort and ProxyClosedPort are where the proxy box's listeners
	// wait on each router, for connections redirected from the server
	// port and from ClosedPort.
	ProxyPort       = 3128
	ProxyClosedPort = 3129
)

// The addresses of every bed (each bed is its own set of namespaces, so
// beds never see each other). r1 is 10.79.1.254 towards the client and
// 10.79.2.1 towards r2; r2 is 10.79.2.254 towards r1 and 10.79.3.254
// towards the server.
var (
	Client4    = netip.MustParseAddr("10.79.1.1")
	R1Client4  = netip.MustParseAddr("10.79.1.254")
	R1Next4    = netip.MustParseAddr("10.79.2.1")
	R2Prev4    = netip.MustParseAddr("10.79.2.254")
	R2Server4  = netip.MustParseAddr("10.79.3.254")
	Server4    = netip.MustParseAddr("10.79.3.1")
	Client6    = netip.MustParseAddr("fd79:1::1")
	R1Client6  = netip.MustParseAddr("fd79:1::fe")
	R1Next6    = netip.MustParseAddr("fd79:2::1")
	R2Prev6    = netip.MustParseAddr("fd79:2::fe")
	R2Server6  = netip.MustParseAddr("fd79:3::fe")
	Server6    = netip.MustParseAddr("fd79:3::1")
	ClientNet4 = netip.MustParsePrefix("10.79.1.0/24")
	ServerNet4 = netip.MustParsePrefix("10.79.3.0/24")
	ClientNet6 = netip.MustParsePrefix("fd79:1::/64")
	ServerNet6 = netip.MustParsePrefix("fd79:3::/64")
)

// NamePrefix starts the name of every namespace a bed makes; the bed's ID
// follows. Start removes namespaces with this prefix that no process uses.
const NamePrefix = "pathlab-"

// TableName is the nftables table (family inet) that holds a box on its
// router.
const TableName = "pathlab_box"

// Bed is a running bed: client, two routers and a server, each in a named
// namespace of its own (/run/netns/NAME), joined by veth pairs.
type Bed struct {
	ID string
	// ClientNS, Router1NS, Router2NS and ServerNS name the namespaces:
	// synprobe --netns NAME, ip netns exec NAME.
	ClientNS, Router1NS, Router2NS, ServerNS string
	// Target and Target6 are the server application (Target6 is zero
	// without Config.IPv6).
	Target, Target6 netip.AddrPort
	// ClosedPort and AltPort are closed ports of the server (see the
	// constants of the same names).
	ClosedPort, AltPort uint16
	// Hops and Hops6 are the addresses each hop answers a TTL walk from:
	// r1's time-exceeded, r2's time-exceeded, the server. Linux takes the
	// source of an ICMP error from the route back to the sender, so each
	// router answers from its address towards the client.
	Hops, Hops6 []netip.Addr
	// ClientIf and ServerIf are the veth names in ClientNS and ServerNS.
	ClientIf, ServerIf string

	cfg Config
	box Box
	at  Position
	sys bedSys
}

// Box returns the box installed and where (BoxNone, First when none).
func (b *Bed) Box() (Box, Position) { return b.box, b.at }

// Ruleset returns the nftables ruleset (nft -f syntax) that SetBox loads
// for box, on whichever router; "" for BoxNone or an unknown box.
func (b *Bed) Ruleset(box Box) string {
	port := DefaultPort
	if b != nil && b.cfg.Port != 0 {
		port = int(b.cfg.Port)
	}
	return Ruleset(box, uint16(port))
}

// Ruleset is the nftables ruleset of box for a server on port.
func Ruleset(box Box, port uint16) string {
	var rules []chain
	ports := fmt.Sprintf("{ %d, %d }", port, ClosedPort)
	switch box {
	case BoxMSSClamp:
		rules = []chain{forward("tcp flags syn tcp option maxseg size > 1200 tcp option maxseg size set 1200")}
	case BoxStripTS:
		rules = []chain{forward("reset tcp option timestamp")}
	case BoxStripSACK:
		rules = []chain{forward("reset tcp option sack-perm", "reset tcp option sack")}
	case BoxStripWS:
		rules = []chain{forward("reset tcp option window")}
	case BoxStripTSData:
		rules = []chain{forward("tcp flags & syn == 0 reset tcp option timestamp")}
	case BoxNAT:
		rules = []chain{{
			name: "boxpost", hook: "type nat hook postrouting priority srcnat; policy accept;",
			rules: []string{
				fmt.Sprintf("ip saddr %s ip daddr %s masquerade random,fully-random", ClientNet4, ServerNet4),
				fmt.Sprintf("ip6 saddr %s ip6 daddr %s masquerade random,fully-random", ClientNet6, ServerNet6),
			},
		}}
	case BoxECNClear:
		rules = []chain{forward(
			"tcp flags & (syn | ack) == syn tcp flags & (ecn | cwr) != 0 tcp flags set syn",
			"ip ecn set not-ect",
			"ip6 ecn set not-ect",
		)}
	case BoxDSCPRewrite:
		rules = []chain{forward("ip dscp set cs0", "ip6 dscp set cs0")}
	case BoxProxy:
		rules = []chain{{
			name: "boxpre", hook: "type nat hook prerouting priority dstnat; policy accept;",
			rules: []string{
				fmt.Sprintf("ip daddr %s tcp dport %d redirect to :%d", Server4, port, ProxyPort),
				fmt.Sprintf("ip daddr %s tcp dport %d redirect to :%d", Server4, ClosedPort, ProxyClosedPort),
				fmt.Sprintf("ip6 daddr %s tcp dport %d redirect to :%d", Server6, port, ProxyPort),
				fmt.Sprintf("ip6 daddr %s tcp dport %d redirect to :%d", Server6, ClosedPort, ProxyClosedPort),
			},
		}}
	case BoxSYNProxy:
		rules = []chain{
			{name: "boxraw", hook: "type filter hook prerouting priority raw; policy accept;",
				rules: []string{fmt.Sprintf("tcp dport %s tcp flags syn notrack", ports)}},
			forward(
				fmt.Sprintf("tcp dport %s ct state invalid,untracked synproxy mss 1460 wscale 7 timestamp sack-perm", ports),
				"ct state invalid drop",
			),
		}
	case BoxDropSYNData:
		// @ih is the payload after the TCP header: the load fails, and
		// the rule does not match, when there is none.
		rules = []chain{forward("tcp flags & (syn | ack) == syn @ih,0,8 & 0x0 == 0x0 drop")}
	case BoxDropUnknownOptions:
		rules = []chain{forward(
			"tcp flags & (syn | ack) == syn tcp option 253 exists drop",
			"tcp flags & (syn | ack) == syn tcp option 254 exists drop",
		)}
	case BoxDropBadSum, BoxDropOutOfState:
		rules = []chain{forward("ct state invalid drop")}
	default:
		return ""
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "table inet %s {\n", TableName)
	for _, c := range rules {
		fmt.Fprintf(&sb, "\tchain %s {\n\t\t%s\n", c.name, c.hook)
		for _, r := range c.rules {
			fmt.Fprintf(&sb, "\t\t%s\n", r)
		}
		sb.WriteString("\t}\n")
	}
	sb.WriteString("}\n")
	return sb.String()
}

type chain struct {
	name, hook string
	rules      []string
}

func forward(rules ...string) chain {
	return chain{name: "boxforward", hook: "type filter hook forward priority mangle; policy accept;", rules: rules}
}

// conntrackSysctls are the conntrack settings of a box's router: strict
// TCP tracking (no pick-up of connections in the middle, so a bare ACK on
// no connection is invalid) for the boxes that drop or answer by state,
// liberal tracking for drop-badsum so that only a bad checksum makes a
// segment invalid, the kernel's defaults otherwise.
func conntrackSysctls(box Box) map[string]string {
	loose, liberal := "1", "0"
	switch box {
	case BoxSYNProxy, BoxDropOutOfState:
		loose = "0"
	case BoxDropBadSum:
		liberal = "1"
	}
	return map[string]string{
		"net.netfilter.nf_conntrack_tcp_loose":      loose,
		"net.netfilter.nf_conntrack_tcp_be_liberal": liberal,
		"net.netfilter.nf_conntrack_checksum":       "1",
	}
}
