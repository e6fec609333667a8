package script

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"synprobe/probe"
)

// This file renders a parsed event back into the script language, in a
// canonical form, for the round-trip tests: parsing the rendering must
// give the same event again.

func formatSeconds(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

func formatTime(ev Event) string {
	tm := ev.Time
	plus := ""
	switch tm.Kind {
	case Any:
		return "*"
	case Relative:
		plus = "+"
	}
	s := plus + formatSeconds(tm.Start)
	switch {
	case tm.Range:
		s += "~" + plus + formatSeconds(tm.End)
	case ev.Syscall != nil && ev.Syscall.Blocking:
		s += "..." + formatSeconds(tm.End)
	}
	return s
}

func formatEvent(ev Event) string {
	var b strings.Builder
	b.WriteString(formatTime(ev))
	b.WriteByte(' ')
	switch {
	case ev.Packet != nil:
		b.WriteString(formatPacket(ev.Packet))
	case ev.Syscall != nil:
		fmt.Fprintf(&b, "%s(%s) = %s", ev.Syscall.Name, ev.Syscall.Args, ev.Syscall.Result)
	default:
		b.WriteString("<no action>")
	}
	return b.String()
}

func formatNum(n Num) string {
	if n.Any {
		return "*"
	}
	return strconv.FormatUint(uint64(n.Value), 10)
}

func formatIP(ip IPSpec) string {
	var parts []string
	switch ip.ECN {
	case ECNNotECT:
		parts = append(parts, "noecn")
	case ECNECT0:
		parts = append(parts, "ect0")
	case ECNECT1:
		parts = append(parts, "ect1")
	case ECNCE:
		parts = append(parts, "ce")
	case ECNECT01:
		parts = append(parts, "ect01")
	}
	for _, f := range []struct {
		name string
		n    Num
	}{{"tos", ip.TOS}, {"ttl", ip.TTL}, {"flowlabel", ip.FlowLabel}, {"id", ip.ID}} {
		if f.n.Set {
			parts = append(parts, f.name+" "+formatNum(f.n))
		}
	}
	if ip.DF.Set {
		if ip.DF.Value == 1 {
			parts = append(parts, "df")
		} else {
			parts = append(parts, "nodf")
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "[" + strings.Join(parts, ", ") + "] "
}

func formatOption(o OptionSpec) string {
	op := o.Option
	switch {
	case op.Wire != nil:
		return "raw 0x" + hex.EncodeToString(op.Wire)
	case op.Kind == probe.OptionMD5:
		return "md5 " + hex.EncodeToString(op.Data)
	case op.Kind == probe.OptionMSS && o.AnyValue:
		return "mss *"
	case op.Kind == probe.OptionWScale && o.AnyValue:
		return "wscale *"
	case op.Kind == probe.OptionFastOpen && o.AnyValue:
		return "FO *"
	case op.IsExpFastOpen() && o.AnyValue:
		return "FOEXP *"
	case op.Kind == probe.OptionTimestamps:
		val, ecr, _ := op.Timestamps()
		v, e := strconv.FormatUint(uint64(val), 10), strconv.FormatUint(uint64(ecr), 10)
		if o.AnyVal {
			v = "*"
		}
		if o.AnyEcr {
			e = "*"
		}
		return "TS val " + v + " ecr " + e
	}
	return op.String()
}

func formatPacket(pk *Packet) string {
	var b strings.Builder
	if pk.Dir == Inbound {
		b.WriteString("< ")
	} else {
		b.WriteString("> ")
	}
	if pk.Silence {
		b.WriteString("none")
		return b.String()
	}
	b.WriteString(formatIP(pk.IP))
	if ic := pk.ICMP; ic != nil {
		b.WriteString("icmp " + ic.Type)
		if ic.Code != "" {
			b.WriteString(" " + ic.Code)
		}
		if ic.From.IsValid() {
			b.WriteString(" from " + ic.From.String())
		}
		if ic.MTU.Set {
			b.WriteString(" mtu " + formatNum(ic.MTU))
		}
		if e := ic.Echoed; e != nil {
			fmt.Fprintf(&b, " [%d:%d(%d)]", e.Seq, e.End, e.Len)
		}
		if q := ic.Quote; q != nil {
			b.WriteString(" [" + formatIP(q.IP) + formatSegment(q) + "]")
		}
		return b.String()
	}
	b.WriteString(formatSegment(pk))
	return b.String()
}

// formatSegment renders the TCP part of a packet line, flags on.
func formatSegment(pk *Packet) string {
	var b strings.Builder
	flags := pk.Flags.String()
	if pk.Flags == 0 {
		flags = ""
	}
	if pk.AE {
		flags += "A"
	}
	if flags == "" {
		flags = "-"
	}
	b.WriteString(flags)
	if pk.LenAny {
		fmt.Fprintf(&b, " %d:*(*)", pk.Seq)
	} else {
		fmt.Fprintf(&b, " %d:%d(%d)", pk.Seq, pk.End, pk.Len)
	}
	for _, f := range []struct {
		name string
		n    Num
	}{{"ack", pk.Ack}, {"win", pk.Win}, {"urg", pk.Urg}} {
		if f.n.Set {
			b.WriteString(" " + f.name + " " + formatNum(f.n))
		}
	}
	switch pk.Options.Kind {
	case AnyOptions:
		b.WriteString(" <...>")
	case Listed:
		parts := make([]string, len(pk.Options.List))
		for i, o := range pk.Options.List {
			parts[i] = formatOption(o)
		}
		if pk.Options.More {
			parts = append(parts, "...")
		}
		b.WriteString(" <" + strings.Join(parts, ",") + ">")
	}
	if pk.Payload != nil {
		text := true
		for _, c := range pk.Payload {
			text = text && (c >= ' ' && c <= '~' || c == '\r' || c == '\n' || c == '\t')
		}
		if text || len(pk.Payload) == 0 {
			b.WriteString(" " + strconv.Quote(string(pk.Payload)))
		} else {
			b.WriteString(" 0x" + hex.EncodeToString(pk.Payload))
		}
	}
	var ov []string
	for _, o := range pk.Overrides {
		switch o.Field {
		case probe.FieldTCPChecksum:
			ov = append(ov, fmt.Sprintf("tcpsum %#x", o.Value))
		case probe.FieldTCPChecksumAdd:
			ov = append(ov, "tcpsum bad")
		case probe.FieldIPChecksum:
			ov = append(ov, fmt.Sprintf("ipsum %#x", o.Value))
		case probe.FieldIPChecksumAdd:
			ov = append(ov, "ipsum bad")
		case probe.FieldTCPDataOffset:
			ov = append(ov, fmt.Sprintf("doff %d", o.Value))
		case probe.FieldIPTotalLength:
			ov = append(ov, fmt.Sprintf("iplen %d", o.Value))
		case probe.FieldIPHeaderLength:
			ov = append(ov, fmt.Sprintf("ihl %d", o.Value))
		case probe.FieldIPVersion:
			ov = append(ov, fmt.Sprintf("ipver %d", o.Value))
		}
	}
	if pk.Reserved != 0 {
		ov = append(ov, fmt.Sprintf("reserved %#x", pk.Reserved))
	}
	if len(ov) > 0 {
		b.WriteString(" {" + strings.Join(ov, ", ") + "}")
	}
	return b.String()
}
