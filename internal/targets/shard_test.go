package targets

import (
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"
	"testing"
)

func TestParseShard(t *testing.T) {
	tests := []struct {
		in   string
		want Shard
		err  string
	}{
		{"0/1", Shard{0, 1}, ""},
		{"3/4", Shard{3, 4}, ""},
		{"4/4", Shard{}, "I must be a number from 0 to 3"},
		{"-1/4", Shard{}, "I must be"},
		{"1/0", Shard{}, "N must be a number from 1"},
		{"1", Shard{}, "want I/N"},
		{"a/b", Shard{}, "N must be"},
	}
	for _, tt := range tests {
		got, err := ParseShard(tt.in)
		if tt.err == "" && (err != nil || got != tt.want) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ParseShard(%q) = %v, %v; want %v, error %q", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestShardFromEnv(t *testing.T) {
	tests := []struct {
		env   map[string]string
		count int
		want  Shard
		from  string
		err   string
	}{
		{nil, 0, Shard{}, "", ""},
		{map[string]string{EnvSlurmTaskID: "7", EnvSlurmTaskMin: "5", EnvSlurmTaskCount: "4"}, 0, Shard{2, 4}, "Slurm array task", ""},
		{map[string]string{EnvSlurmTaskID: "2"}, 3, Shard{2, 3}, "Slurm array task", ""},
		{map[string]string{EnvSlurmTaskID: "9", EnvSlurmTaskMin: "5", EnvSlurmTaskCount: "4"}, 0, Shard{}, "", "shard 4: want 0 to 3"},
		{map[string]string{EnvSlurmTaskID: "x"}, 0, Shard{}, "", `SLURM_ARRAY_TASK_ID="x" is not a number`},
		{map[string]string{EnvJobIndex: "1"}, 2, Shard{1, 2}, "Kubernetes job index", ""},
		{map[string]string{EnvJobIndex: "1", EnvShardCount: "8"}, 0, Shard{1, 8}, "Kubernetes job index", ""},
		{map[string]string{EnvJobIndex: "1"}, 0, Shard{}, "", "no number of shards"},
	}
	for _, tt := range tests {
		got, from, err := ShardFromEnv(func(k string) string { return tt.env[k] }, tt.count)
		if tt.err == "" && (err != nil || got != tt.want || from != tt.from) || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("ShardFromEnv(%v, %d) = %v, %q, %v; want %v, %q, error %q", tt.env, tt.count, got, from, err, tt.want, tt.from, tt.err)
		}
	}
}

// TestShardPartition: over a /16, every target is in exactly one of N
// shards, and shards are balanced within 3%.
func TestShardPartition(t *testing.T) {
	const total = 1 << 16
	for _, n := range []int{2, 3, 7, 16} {
		counts := make([]int, n)
		for i := range n {
			r := NewReader(strings.NewReader("10.20.0.0/16\n"), Options{DefaultPort: 443, Shard: Shard{i, n}})
			for {
				ap, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if ShardOf(ap, n) != i {
					t.Fatalf("%v came out of shard %d, belongs to %d", ap, i, ShardOf(ap, n))
				}
				counts[i]++
			}
			if st := r.Stats(); st.Targets+st.OtherShard != total {
				t.Errorf("shard %d/%d: %d kept + %d other = %d, want %d", i, n, st.Targets, st.OtherShard, st.Targets+st.OtherShard, total)
			}
		}
		sum := 0
		for i, c := range counts {
			sum += c
			if dev := math.Abs(float64(c)/(float64(total)/float64(n)) - 1); dev > 0.05 {
				t.Errorf("shard %d/%d holds %d targets, %.1f%% off an even share", i, n, c, 100*dev)
			}
		}
		if sum != total {
			t.Errorf("%d shards hold %d targets, want %d (each exactly once)", n, sum, total)
		}
	}
}

// TestShardStable pins the partition: every machine of a job, and every
// version of synprobe, must put a target in the same shard.
func TestShardStable(t *testing.T) {
	var got []string
	for _, s := range []string{"10.0.0.1:80", "10.0.0.2:80", "[2001:db8::1]:443", "192.168.1.1:22"} {
		got = append(got, fmt.Sprint(ShardOf(netip.MustParseAddrPort(s), 1000)))
	}
	const want = "992,11,76,782"
	if g := strings.Join(got, ","); g != want {
		t.Errorf("shards of the pinned targets are %s, want %s: the partition changed", g, want)
	}
}
