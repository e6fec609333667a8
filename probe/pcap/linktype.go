package pcap

import "strconv"

// LinkType says what the captured bytes of a packet begin with. Its values are
// tcpdump.org's LINKTYPE_ numbers, the ones stored in capture files (not the
// DLT_ numbers of the libpcap API, which differ on some systems).
type LinkType uint32

// The link types synprobe can take apart.
const (
	LinkTypeNull      LinkType = 0   // BSD loopback: 4-byte address family in the writer's byte order
	LinkTypeEthernet  LinkType = 1   // Ethernet II / 802.3
	LinkTypeRaw       LinkType = 101 // raw IP, version in the first nibble
	LinkTypeLoop      LinkType = 108 // OpenBSD loopback: 4-byte address family, big-endian
	LinkTypeLinuxSLL  LinkType = 113 // Linux "cooked" capture, version 1 (tcpdump -i any)
	LinkTypeIPv4      LinkType = 228 // raw IPv4
	LinkTypeIPv6      LinkType = 229 // raw IPv6
	LinkTypeLinuxSLL2 LinkType = 276 // Linux "cooked" capture, version 2
)

var linkTypeNames = map[LinkType]string{
	LinkTypeNull:      "NULL",
	LinkTypeEthernet:  "ETHERNET",
	LinkTypeRaw:       "RAW",
	LinkTypeLoop:      "LOOP",
	LinkTypeLinuxSLL:  "LINUX_SLL",
	LinkTypeIPv4:      "IPV4",
	LinkTypeIPv6:      "IPV6",
	LinkTypeLinuxSLL2: "LINUX_SLL2",
}

// String returns the LINKTYPE_ name without its prefix ("ETHERNET"), or
// "LINKTYPE(n)" for a type this package does not name.
func (lt LinkType) String() string {
	if name, ok := linkTypeNames[lt]; ok {
		return name
	}
	return "LINKTYPE(" + strconv.FormatUint(uint64(lt), 10) + ")"
}
