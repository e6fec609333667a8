package targets

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
)

// Done is the set of targets a previous run finished, from its JSON lines.
// It holds one entry per line of that output (about 60 bytes each): the
// only per-target state of a resumed run.
type Done struct {
	m map[netip.AddrPort]struct{}
	// Interrupted counts the lines of targets that run did not finish,
	// Errored those with an error and no fail (the host could not check
	// the target: no neighbour, frames dropped); both are done again.
	// Partial is 1 when the last line was cut short.
	Interrupted, Errored, Partial int
}

// Has reports whether ap was done; a nil Done has nothing.
func (d *Done) Has(ap netip.AddrPort) bool {
	if d == nil {
		return false
	}
	_, ok := d.m[ap]
	return ok
}

// Len is the number of targets done.
func (d *Done) Len() int {
	if d == nil {
		return 0
	}
	return len(d.m)
}

// doneLine is what a resume reads of a line of synprobe's JSON lines:
// the target (a report's object, or a string) and whether it finished.
type doneLine struct {
	Target      json.RawMessage `json:"target"`
	Interrupted bool            `json:"interrupted"`
	Results     []struct {
		Verdict string `json:"verdict"`
	} `json:"results"`
}

// redo reports whether the line's target is to be checked again: the run
// did not finish it, or the host could not check it (an error and no
// fail: report.Report.ExitCode 3).
func (l *doneLine) redo() (interrupted, errored bool) {
	if l.Interrupted {
		return true, false
	}
	for _, r := range l.Results {
		switch r.Verdict {
		case "fail":
			return false, false
		case "error":
			errored = true
		}
	}
	return false, errored
}

// ReadDone reads the targets of a --format jsonl output. A last line cut
// short (a run killed while writing) is ignored: that target is done
// again. Lines of interrupted targets, and of targets with an error and
// no fail, do not count: a resumed run checks them again (summarize
// counts the later line).
func ReadDone(r io.Reader, name string) (*Done, error) {
	d := &Done{m: map[netip.AddrPort]struct{}{}}
	br := bufio.NewReaderSize(r, 1<<16)
	for line := 1; ; line++ {
		b, err := br.ReadBytes('\n')
		if len(b) == 0 && err == io.EOF {
			return d, nil
		}
		if err != nil && err != io.EOF {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		last := err == io.EOF
		b = bytes.TrimSpace(b)
		if len(b) == 0 {
			continue
		}
		ap, l, perr := parseDoneLine(b)
		interrupted, errored := l.redo()
		switch {
		case perr != nil && last:
			d.Partial = 1
			return d, nil
		case perr != nil:
			return nil, &LineError{name, line, perr}
		case interrupted:
			d.Interrupted++
		case errored:
			d.Errored++
		default:
			d.m[ap] = struct{}{}
		}
		if last {
			return d, nil
		}
	}
}

func parseDoneLine(b []byte) (netip.AddrPort, *doneLine, error) {
	var l doneLine
	if err := json.Unmarshal(b, &l); err != nil {
		return netip.AddrPort{}, &l, fmt.Errorf("not a JSON line of synprobe --format jsonl: %v", err)
	}
	ap, err := TargetOf(l.Target)
	return ap, &l, err
}

// TargetOf reads the target of a report line: {"address": "HOST:PORT"}
// or "HOST:PORT".
func TargetOf(raw json.RawMessage) (netip.AddrPort, error) {
	if len(raw) == 0 {
		return netip.AddrPort{}, errors.New(`no "target"`)
	}
	var text string
	if raw[0] == '{' {
		var t struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return netip.AddrPort{}, fmt.Errorf("target: %v", err)
		}
		text = t.Address
	} else if err := json.Unmarshal(raw, &text); err != nil {
		return netip.AddrPort{}, fmt.Errorf("target: %v", err)
	}
	ap, err := netip.ParseAddrPort(text)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("target %q is not ADDRESS:PORT", text)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// TrimPartialLine cuts a file after its last newline: a run killed while
// writing may leave half a line, which the next line must not join
// (a resumed run appends to the file ReadDone read).
func TrimPartialLine(name string) error {
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return err
	}
	// Lines are reports of a few kilobytes; look back far enough for one.
	const back = 1 << 20
	off := max(st.Size()-back, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return err
	}
	if buf[len(buf)-1] == '\n' {
		return nil
	}
	i := bytes.LastIndexByte(buf, '\n')
	if i < 0 && off > 0 {
		return fmt.Errorf("its last line is longer than %d bytes", back)
	}
	return f.Truncate(off + int64(i+1))
}
