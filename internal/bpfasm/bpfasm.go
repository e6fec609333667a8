// Package bpfasm is a tiny assembler for classic BPF with forward labels,
// so that a filter program reads as a flow chart instead of a table of skip
// counts. The packet link's flow filter and the reflector's capture filter
// are written with it.
package bpfasm

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Program is a program being assembled.
type Program struct {
	prog   []bpf.Instruction
	labels map[string]int
	fixups []fixup
}

// fixup names the targets of the jump at prog[at]; "" falls through.
type fixup struct {
	at   int
	t, f string
}

// New starts an empty program.
func New() *Program { return &Program{labels: map[string]int{}} }

// Emit appends an instruction.
func (a *Program) Emit(ins bpf.Instruction) { a.prog = append(a.prog, ins) }

// Label names the next instruction.
func (a *Program) Label(name string) { a.labels[name] = len(a.prog) }

// JumpIf emits a conditional jump to label t when "A cond val" holds and to
// label f otherwise ("" falls through).
func (a *Program) JumpIf(cond bpf.JumpTest, val uint32, t, f string) {
	a.Emit(bpf.JumpIf{Cond: cond, Val: val})
	a.fixups = append(a.fixups, fixup{at: len(a.prog) - 1, t: t, f: f})
}

// Jump emits an unconditional jump to label t.
func (a *Program) Jump(t string) {
	a.Emit(bpf.Jump{})
	a.fixups = append(a.fixups, fixup{at: len(a.prog) - 1, t: t})
}

// Resolve patches every jump with the distance to its labels and returns
// the program. Jumps go forward only, as classic BPF's do.
func (a *Program) Resolve() ([]bpf.Instruction, error) {
	skip := func(from int, name string) (uint32, error) {
		if name == "" {
			return 0, nil
		}
		to, ok := a.labels[name]
		if !ok {
			return 0, fmt.Errorf("bpf: no label %q", name)
		}
		if to <= from {
			return 0, fmt.Errorf("bpf: jump backwards from %d to %q", from, name)
		}
		return uint32(to - from - 1), nil
	}
	for _, fx := range a.fixups {
		st, err := skip(fx.at, fx.t)
		if err != nil {
			return nil, err
		}
		switch ins := a.prog[fx.at].(type) {
		case bpf.Jump:
			ins.Skip = st
			a.prog[fx.at] = ins
		case bpf.JumpIf:
			sf, err := skip(fx.at, fx.f)
			if err != nil {
				return nil, err
			}
			if st > 255 || sf > 255 {
				return nil, fmt.Errorf("bpf: conditional jump at %d too far (%d, %d)", fx.at, st, sf)
			}
			ins.SkipTrue, ins.SkipFalse = uint8(st), uint8(sf)
			a.prog[fx.at] = ins
		}
	}
	return a.prog, nil
}
