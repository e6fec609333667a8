package script

import (
	"bytes"
	"fmt"
	"testing"
)

// script10000 is a 10,000-line script in the style of real ones: packet
// lines with options, data, wildcards and payloads, system calls,
// comments and blank lines.
func script10000() []byte {
	var b bytes.Buffer
	b.WriteString("--tolerance_usecs=10000\n// @name bench\n// @tags bench\n")
	lines := 3
	seq := 1
	for lines < 10000 {
		block := []string{
			"",
			"// one exchange: data in, ACK out, data out",
			fmt.Sprintf("+.001 < P. %d:%d(1000) ack 1 win 257 <nop,nop,TS val %d ecr 100>", seq, seq+1000, seq),
			fmt.Sprintf("+0~+.04 > . 1:1(0) ack %d <nop,nop,TS val * ecr %d>", seq+1000, seq),
			"+0 read(4, ..., 1000) = 1000",
			"+0 write(4, ..., 18) = 18",
			fmt.Sprintf("+0 > P. 1:19(18) ack %d win * <...> \"HTTP/1.0 200 OK\\r\\n\"", seq+1000),
			fmt.Sprintf("+.01 < . %d:%d(0) ack 19 win 257 <sack 1:19 20:30,nop,nop>", seq+1000, seq+1000),
			"+0 setsockopt(4, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0",
			fmt.Sprintf("+0 < [ect0, ttl 64] .  %d:%d(0) ack 19 win 257 {tcpsum bad}", seq+1000, seq+1000),
		}
		for _, l := range block {
			if lines == 10000 {
				break
			}
			b.WriteString(l)
			b.WriteByte('\n')
			lines++
		}
		seq += 1000
	}
	return b.Bytes()
}

func BenchmarkParse10000(b *testing.B) {
	src := script10000()
	if n := bytes.Count(src, []byte("\n")); n != 10000 {
		b.Fatalf("script has %d lines, want 10000", n)
	}
	s, err := Parse("bench.pkt", src)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(s.Events)), "events")
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("bench.pkt", src); err != nil {
			b.Fatal(err)
		}
	}
}
