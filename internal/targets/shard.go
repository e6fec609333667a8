package targets

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"synprobe/internal/siphash"
)

// Shard is one part of a partition of the targets into Count parts; Index
// is 0-based. The zero Shard (Count 0) keeps every target.
type Shard struct {
	Index, Count int
}

// MaxShards bounds Count.
const MaxShards = 1 << 20

// shardKey is fixed: every machine of a job must agree on the partition.
// It keys nothing secret; SipHash is used for its spread, which keeps the
// shards of a CIDR (consecutive addresses) balanced.
var shardKey = siphash.KeyFrom([16]byte{'s', 'y', 'n', 'p', 'r', 'o', 'b', 'e', '-', 's', 'h', 'a', 'r', 'd', 's', '1'})

// ShardOf returns the part, out of count, that ap belongs to.
func ShardOf(ap netip.AddrPort, count int) int {
	var msg [18]byte
	a := ap.Addr().Unmap().As16()
	copy(msg[:16], a[:])
	binary.BigEndian.PutUint16(msg[16:], ap.Port())
	return int(shardKey.Sum64(msg[:]) % uint64(count))
}

// Has reports whether ap is in the shard.
func (s Shard) Has(ap netip.AddrPort) bool {
	if s.Count <= 1 {
		return true
	}
	return ShardOf(ap, s.Count) == s.Index
}

func (s Shard) String() string { return fmt.Sprintf("%d/%d", s.Index, s.Count) }

// ParseShard reads "I/N": shard I (from 0) of N.
func ParseShard(text string) (Shard, error) {
	i, n, ok := strings.Cut(text, "/")
	if !ok {
		return Shard{}, fmt.Errorf("%q: want I/N, shard I (from 0) of N, such as 0/4", text)
	}
	count, err := strconv.Atoi(n)
	if err != nil || count < 1 || count > MaxShards {
		return Shard{}, fmt.Errorf("%q: N must be a number from 1 to %d", text, MaxShards)
	}
	index, err := strconv.Atoi(i)
	if err != nil || index < 0 || index >= count {
		return Shard{}, fmt.Errorf("%q: I must be a number from 0 to %d (shards count from 0)", text, count-1)
	}
	return Shard{index, count}, nil
}

// The environment of the batch systems that run array jobs.
const (
	EnvSlurmTaskID    = "SLURM_ARRAY_TASK_ID"
	EnvSlurmTaskMin   = "SLURM_ARRAY_TASK_MIN"
	EnvSlurmTaskCount = "SLURM_ARRAY_TASK_COUNT"
	// EnvJobIndex is set by Kubernetes in the pods of an Indexed Job; the
	// number of completions is not in a pod's environment, so the count
	// comes from a flag or EnvShardCount.
	EnvJobIndex = "JOB_COMPLETION_INDEX"
	// EnvShardCount gives the number of shards to JOB_COMPLETION_INDEX
	// (the job's completions).
	EnvShardCount = "SYNPROBE_SHARDS"
)

// ShardFromEnv finds the shard in the environment of a Slurm array job
// (I = SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, N =
// SLURM_ARRAY_TASK_COUNT) or a Kubernetes Indexed Job (I =
// JOB_COMPLETION_INDEX, N = count, else SYNPROBE_SHARDS). It returns the
// zero Shard and "" when neither is there, and says where it found it.
func ShardFromEnv(getenv func(string) string, count int) (Shard, string, error) {
	num := func(name string) (int, error) {
		v, err := strconv.Atoi(strings.TrimSpace(getenv(name)))
		if err != nil {
			return 0, fmt.Errorf("%s=%q is not a number", name, getenv(name))
		}
		return v, nil
	}
	if getenv(EnvSlurmTaskID) != "" {
		id, err := num(EnvSlurmTaskID)
		if err != nil {
			return Shard{}, "", err
		}
		lo := 0
		if getenv(EnvSlurmTaskMin) != "" {
			if lo, err = num(EnvSlurmTaskMin); err != nil {
				return Shard{}, "", err
			}
		}
		n := count
		if getenv(EnvSlurmTaskCount) != "" {
			if n, err = num(EnvSlurmTaskCount); err != nil {
				return Shard{}, "", err
			}
		}
		s, err := checkShard(id-lo, n)
		if err != nil {
			return Shard{}, "", fmt.Errorf("array task %d of Slurm (from %d, %d tasks): %v", id, lo, n, err)
		}
		return s, "Slurm array task", nil
	}
	if getenv(EnvJobIndex) != "" {
		idx, err := num(EnvJobIndex)
		if err != nil {
			return Shard{}, "", err
		}
		n := count
		if n == 0 && getenv(EnvShardCount) != "" {
			if n, err = num(EnvShardCount); err != nil {
				return Shard{}, "", err
			}
		}
		if n == 0 {
			return Shard{}, "", fmt.Errorf("%s=%d but no number of shards: give --shard-count or %s (the job's completions)", EnvJobIndex, idx, EnvShardCount)
		}
		s, err := checkShard(idx, n)
		if err != nil {
			return Shard{}, "", fmt.Errorf("job completion index of Kubernetes: %v", err)
		}
		return s, "Kubernetes job index", nil
	}
	return Shard{}, "", nil
}

func checkShard(i, n int) (Shard, error) {
	if n < 1 || n > MaxShards {
		return Shard{}, fmt.Errorf("%d shards: want 1 to %d", n, MaxShards)
	}
	if i < 0 || i >= n {
		return Shard{}, fmt.Errorf("shard %d: want 0 to %d", i, n-1)
	}
	return Shard{i, n}, nil
}
