package script

import "fmt"

// ICMPTypeCode resolves packetdrill's ICMP names (temporary; the parser
// brings the full tables).
func ICMPTypeCode(ipv6 bool, typ, code string) (uint8, uint8, error) {
	return 0, 0, fmt.Errorf("icmp %s %s: not yet supported", typ, code)
}
