package pathlab

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"

	"github.com/vishvananda/netlink"
)

// SetBox installs box on the router at at, replacing whatever box either
// router had; BoxNone removes it. It also sets the router's conntrack
// settings for the box and forgets the connections both routers tracked,
// so that no state of an earlier box carries over.
func (b *Bed) SetBox(box Box, at Position) error {
	if _, err := ParseBox(string(box)); err != nil {
		return fmt.Errorf("set box: %w", err)
	}
	if at != First && at != Last {
		return fmt.Errorf("set box %s: %v is neither First nor Last", box, at)
	}
	b.sys.mu.Lock()
	defer b.sys.mu.Unlock()
	if b.sys.closed {
		return fmt.Errorf("set box %s at %v: the bed is closed", box, at)
	}
	on := Router1
	if at == Last {
		on = Router2
	}
	b.box, b.at = BoxNone, First
	for _, n := range []Node{Router1, Router2} {
		// Adding the table first makes the delete succeed when there is
		// none; nft applies the file as one transaction.
		script := fmt.Sprintf("add table inet %s\ndelete table inet %s\n", TableName, TableName)
		want := BoxNone
		if n == on && box != BoxNone {
			want = box
			script += b.Ruleset(box)
		}
		if err := b.nft(n, script); err != nil {
			return fmt.Errorf("set box %s at %v: %w", box, at, err)
		}
		if err := b.sysctls(n, conntrackSysctls(want)); err != nil {
			return fmt.Errorf("set box %s at %v: %w", box, at, err)
		}
		err := b.In(n, func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) })
		if err != nil {
			return fmt.Errorf("set box %s at %v: flush conntrack on %s: %w", box, at, n, err)
		}
	}
	b.box, b.at = box, at
	return nil
}

// nft runs `nft -f -` with script on node n.
func (b *Bed) nft(n Node, script string) error {
	var out bytes.Buffer
	err := b.In(n, func() error {
		// The child is forked from this thread, in n's namespace.
		cmd := exec.Command("nft", "-f", "-")
		cmd.Stdin = strings.NewReader(script)
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd.Run()
	})
	if err != nil {
		return fmt.Errorf("nft on %s: %w: %s\nruleset:\n%s", n, err, strings.TrimSpace(out.String()), script)
	}
	return nil
}

// ListRuleset returns `nft list ruleset` of node n, for failure messages.
func (b *Bed) ListRuleset(n Node) (string, error) {
	var out bytes.Buffer
	err := b.In(n, func() error {
		cmd := exec.Command("nft", "list", "ruleset")
		cmd.Stdout, cmd.Stderr = &out, &out
		return cmd.Run()
	})
	if err != nil {
		return "", fmt.Errorf("nft list ruleset on %s: %w: %s", n, err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
