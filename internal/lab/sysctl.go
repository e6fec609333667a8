package lab

// Sysctl is one kernel setting of the Linux target's namespace, by its
// sysctl name ("net.ipv4.tcp_ecn").
type Sysctl struct {
	Name, Value string
}

// PacketdrillDefaults are the TCP settings that the Linux kernel's
// packetdrill selftests give every script: the sysctls set by
// tools/testing/selftests/net/packetdrill/defaults.sh (our own table of
// its values; nothing of the script is run). Published scripts assume
// them: cubic, no ECN, Fast Open server and client with a fixed key, RACK,
// no slow start after idle. Its two other steps need nothing here: a fresh
// namespace has no TCP metrics to flush, and the lab's veth has no queue
// discipline to replace (veth is noqueue, so nothing paces the target).
// tcp_fack is gone from recent kernels; where a name does not exist in the
// target's namespace it is left out with a note (Target.Notes).
var PacketdrillDefaults = []Sysctl{
	{"net.ipv4.tcp_rmem", "4096 540000 15728640"},
	{"net.ipv4.tcp_wmem", "4096 262144 4194304"},
	{"net.ipv4.tcp_timestamps", "1"},
	{"net.ipv4.tcp_syn_retries", "5"},
	{"net.ipv4.tcp_synack_retries", "5"},
	{"net.ipv4.tcp_frto", "2"},
	{"net.ipv4.tcp_sack", "1"},
	{"net.ipv4.tcp_dsack", "1"},
	{"net.ipv4.tcp_fack", "0"},
	{"net.ipv4.tcp_reordering", "3"},
	{"net.ipv4.tcp_congestion_control", "cubic"},
	{"net.ipv4.tcp_slow_start_after_idle", "0"},
	{"net.ipv4.tcp_early_retrans", "4"},
	{"net.ipv4.tcp_recovery", "1"},
	{"net.ipv4.tcp_tso_win_divisor", "3"},
	{"net.ipv4.tcp_ecn", "0"},
	{"net.ipv4.tcp_pacing_ss_ratio", "200"},
	{"net.ipv4.tcp_pacing_ca_ratio", "120"},
	{"net.ipv4.tcp_notsent_lowat", "4294967295"},
	{"net.ipv4.tcp_fastopen", "3"},
	{"net.ipv4.tcp_fastopen_key", "a1a1a1a1-b2b2b2b2-c3c3c3c3-d4d4d4d4"},
	{"net.ipv4.tcp_syncookies", "1"},
}

// Options change a lab from its stock state.
type Options struct {
	// Sysctls are set in the Linux target's namespace before its listener
	// opens. Only per-namespace settings can be: one the namespace does
	// not have (a global one, or one this kernel lacks) is left out, and
	// Target.Notes says so. The gVisor lab has no sysctls; it notes that
	// it kept its own settings.
	Sysctls []Sysctl
}
