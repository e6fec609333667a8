package fingerprint

// What a box on the path may have changed of a fingerprint (--path-check):
// the fields PathUnknown takes.
const (
	PathTimestamps = "timestamps"
	PathSACK       = "sack"
	PathWScale     = "window-scale"
	PathECN        = "ecn"
	// PathMSS keeps the SYN-ACK's MSS (it is what arrived) and says it
	// was clamped on the path.
	PathMSS    = "syn-ack-mss"
	PathRSTTTL = "rst-ttl"
	PathISN    = "isn-one-4tuple"
	// PathAll: a box answered instead of the target; the whole
	// fingerprint is the box's.
	PathAll = "all"
)

// PathUnknown makes a field that a box on the path may have changed
// unknown, with why ("path: timestamps stripped between ..."), so that
// the fingerprint never describes the path as the target's stack. It
// reports whether field is known.
func (f *Fingerprint) PathUnknown(field, why string) bool {
	switch field {
	case PathTimestamps:
		f.Timestamps = Timestamps{Why: why}
	case PathSACK:
		f.SACK = Support{Why: why}
	case PathWScale:
		f.SYNACK.WScale, f.SYNACK.WScaleWhy = nil, why
	case PathECN:
		f.ECN = Support{Why: why}
	case PathMSS:
		f.SYNACK.MSSWhy = why
	case PathRSTTTL:
		f.TTL.RST, f.TTL.RSTInitial = nil, nil
		if f.TTL.Why != "" {
			why = f.TTL.Why + "; " + why
		}
		f.TTL.Why = why
	case PathISN:
		f.ISN.OneTuple = ISNOneTuple{Why: why}
	case PathAll:
		f.Notes = append([]string{why}, f.Notes...)
	default:
		return false
	}
	return true
}
